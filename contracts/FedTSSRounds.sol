// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IFedTSSRounds} from "./IFedTSSRounds.sol";

/**
 * @title FedTSSRounds
 * @notice The coordinator of fedtss: there is no central server. See {IFedTSSRounds} for the
 * types, errors and events, and DESIGN.md for one round end to end.
 *
 * Storage is laid out for the common path: a round's state, counts and deadlines share one
 * slot; each client and each member has one slot, written at construction (clients also by
 * {addClients}), that remembers
 * the last round it acted in (so the "once per round" checks cost one warm write); the
 * submission order is packed sixteen clients to a slot. No transaction loops over clients;
 * {submitComplaints} loops over the complaints it is given, at most one per client of the round.
 */
contract FedTSSRounds is IFedTSSRounds {
    uint64 private constant CODEC_RAW = 0x55;
    uint64 private constant CODEC_DAG_PB = 0x70;
    uint256 private constant MAX_COMMITTEE = 255;
    /// @dev 16 client-set words; a member's checks for that many clients are 96 KiB of calldata.
    uint256 private constant MAX_TARGET_CLIENTS = 4096;
    uint256 private constant MAX_ALLOWLIST = type(uint16).max;
    /// @dev Longest time limit: `block.timestamp + period` must fit in the uint64 deadlines, or
    /// every `startTraining` would revert on overflow and the deployment would be unusable.
    uint256 private constant MAX_PERIOD = type(uint32).max;
    /// @dev The rings Z_(2^b) of `MaskedSum` mode: whole bytes from 32 to 64 bits.
    uint256 private constant MIN_MODULUS_BITS = 32;
    uint256 private constant MAX_MODULUS_BITS = 64;
    /// @dev A member's checks of one client: a projection, a share of its sample count and a norm value, 8 bytes each.
    uint256 private constant CHECK_BYTES_PER_CLIENT = 24;
    /// @dev A complaint's evidence: the AES key of a share that opened, or a proven X25519 secret (32 + 64).
    uint256 private constant KEY_BYTES = 32;
    uint256 private constant PROVEN_SECRET_BYTES = 96;

    /// @dev One slot per round, written together on every transition.
    struct Round {
        RoundState state;
        RoundState stateAtFailure;
        uint16 clients;
        uint8 shares;
        uint8 votes;
        uint64 collectionDeadline;
        uint64 committeeDeadline;
        uint8 includedWords; // words of the set fixed by ThresholdReached (0 before it)
    }

    /// @dev One slot, for the training as a whole.
    struct Training {
        uint64 currentRound;
        uint32 roundsFinalized;
        uint32 finalizeUntil;
        uint64 modelRound;
        uint64 modelCodec;
    }

    /// @dev One slot per allowlisted client; `position` is 1-based (0: not allowlisted).
    struct ClientSlot {
        uint16 position;
        uint64 lastRound;
    }

    /// @dev One slot per committee member; `index` is 1-based (0: not a member). The rounds of
    /// checks and complaints take 56 bits so that all four fit the slot: a round is opened at most
    /// once per transaction, so no chain reaches round 2**56. They are compared as `uint56(round)`,
    /// so a wrap-around could only refuse a member, never let it post twice in a round.
    struct MemberSlot {
        uint8 index;
        uint64 lastShareRound;
        uint64 lastVoteRound;
        uint56 lastChecksRound;
        uint56 lastComplaintsRound;
    }

    /// @notice The deployer; the only account that may start training and reopen rounds.
    address public immutable operator;
    /// @notice t: aggregate shares over one client set to reconstruct, and votes to finalize.
    uint8 public immutable threshold;
    /// @notice The fewest updates a round may aggregate.
    uint16 public immutable minClients;
    /// @notice The number of updates that closes collection at once.
    uint16 public immutable targetClients;
    /// @notice Seconds a round collects updates.
    uint64 public immutable collectionPeriod;
    /// @notice Seconds the committee has to aggregate, and again to vote.
    uint64 public immutable aggregationPeriod;
    /// @dev The deployment's {AggregationMode} and ring bits (0 in `ShamirShares`), read by {aggregation}.
    AggregationMode private immutable _mode;
    uint8 private immutable _modulusBits;
    /// @notice Seconds members have to post checks after collection closes, and again complaints
    /// after that (0: the deployment has no client checks).
    uint64 public immutable checkPeriod;

    Training private _training;
    bytes32 private _modelDigest;
    address[] private _committee;
    bytes32[] private _sealingKeys;
    address[] private _clients;
    /// @dev Written at construction and by {addClients} in `MaskedSum` mode only; read by agents, never by a transaction.
    bytes32[] private _clientKeys;
    mapping(address account => MemberSlot) private _members;
    mapping(address account => ClientSlot) private _clientSlots;
    mapping(uint256 round => Round) private _rounds;
    /// @dev The words of the client set fixed by ThresholdReached (their count is in the Round's slot).
    mapping(uint256 round => mapping(uint256 word => uint256 bits)) private _includedClients;
    /// @dev Allowlist positions (1-based, 16 bits each) in submission order, 16 to a word.
    mapping(uint256 round => mapping(uint256 word => uint256 positions)) private _submitterWords;
    /// @dev Keyed by the keccak256 of the round and the set's words (one set has one canonical form).
    mapping(bytes32 roundAndSet => uint256 count) private _shareCounts;
    mapping(uint256 round => mapping(bytes32 modelKey => uint256 count)) private _voteCounts;

    /**
     * @notice Deploys the round contract; the caller becomes the operator.
     *
     * Requirements:
     * - 2 <= committee size <= 255, one non-zero sealing key per member, no duplicates;
     * - 2 <= threshold <= committee size;
     * - 2 <= minClients <= targetClients <= 4096, no duplicate or zero client (the allowlist may
     *   hold fewer than minClients clients: {addClients} completes it, {startTraining} checks it);
     * - allowlist size <= 65535;
     * - both periods are positive and at most 2**32 - 1 seconds;
     * - `ShamirShares` mode: modulusBits = 0 and no client key;
     * - `MaskedSum` mode: modulusBits is 32, 40, 48, 56 or 64, and one non-zero client key per
     *   allowlisted client;
     * - checkPeriod is 0, or (`ShamirShares` mode only) 2 * checkPeriod < aggregationPeriod.
     */
    constructor(Config memory config) {
        uint256 n = config.committee.length;
        if (n < 2 || n > MAX_COMMITTEE || config.sealingKeys.length != n) {
            revert ConfigInvalidCommittee(n, config.sealingKeys.length);
        }
        if (config.threshold < 2 || config.threshold > n) revert ConfigInvalidThreshold(config.threshold, n);
        uint256 allowlisted = config.clients.length;
        if (
            config.minClients < 2 || config.minClients > config.targetClients
                || config.targetClients > MAX_TARGET_CLIENTS || allowlisted > MAX_ALLOWLIST
        ) revert ConfigInvalidClientLimits(config.minClients, config.targetClients, allowlisted);
        if (
            config.collectionPeriod == 0 || config.aggregationPeriod == 0 || config.collectionPeriod > MAX_PERIOD
                || config.aggregationPeriod > MAX_PERIOD
        ) {
            revert ConfigInvalidPeriod(config.collectionPeriod, config.aggregationPeriod);
        }
        bool masked = config.mode == AggregationMode.MaskedSum;
        _requireAggregation(config.mode, config.modulusBits, config.clientKeys.length, allowlisted);
        if (config.checkPeriod != 0 && (masked || 2 * uint256(config.checkPeriod) >= config.aggregationPeriod)) {
            revert ConfigInvalidCheckPeriod(config.checkPeriod, config.aggregationPeriod);
        }
        for (uint256 i = 0; i < n; ++i) {
            address account = config.committee[i];
            if (account == address(0)) revert ConfigZeroAddress();
            if (_members[account].index != 0) revert ConfigDuplicateMember(account);
            if (config.sealingKeys[i] == bytes32(0)) revert ConfigInvalidSealingKey(account);
            _members[account].index = uint8(i + 1);
        }
        _allowlist(config.clients, config.clientKeys, masked);
        operator = msg.sender;
        threshold = config.threshold;
        minClients = config.minClients;
        targetClients = config.targetClients;
        collectionPeriod = config.collectionPeriod;
        aggregationPeriod = config.aggregationPeriod;
        _mode = config.mode;
        _modulusBits = config.modulusBits;
        checkPeriod = config.checkPeriod;
        _committee = config.committee;
        _sealingKeys = config.sealingKeys;
    }

    // ---------------------------------------------------------------------- transactions

    /// @inheritdoc IFedTSSRounds
    function addClients(address[] memory accounts, bytes32[] memory keys) external {
        _requireOperator();
        uint64 opened = _training.currentRound;
        if (opened != 0) revert ConfigAllowlistClosed(opened);
        bool masked = _mode == AggregationMode.MaskedSum;
        if (accounts.length == 0) revert ConfigNoClientsToAdd();
        uint256 allowlisted = _clients.length + accounts.length;
        if (allowlisted > MAX_ALLOWLIST) revert ConfigInvalidClientLimits(minClients, targetClients, allowlisted);
        if (keys.length != (masked ? accounts.length : 0)) revert ConfigInvalidClientKeys(keys.length, accounts.length);

        _allowlist(accounts, keys, masked);
        emit ClientsAdded(accounts.length, allowlisted);
    }

    /// @inheritdoc IFedTSSRounds
    function startTraining(uint64 modelCodec, bytes32 modelDigest, uint64 rounds) external {
        _requireOperator();
        Training memory t = _training;
        if (t.currentRound != 0 && t.roundsFinalized < t.finalizeUntil) revert TrainingInProgress(t.currentRound);
        if (rounds == 0 || rounds > type(uint32).max - t.roundsFinalized) revert TrainingInvalidRoundCount(rounds);
        if (t.currentRound == 0 && _clients.length < minClients) {
            revert TrainingNotEnoughClients(_clients.length, minClients);
        }
        _requireCid(modelCodec, modelDigest);

        uint64 round = t.currentRound + 1;
        t.finalizeUntil = uint32(t.roundsFinalized + rounds);
        t.modelRound = 0;
        t.modelCodec = modelCodec;
        t.currentRound = round;
        _training = t;
        _modelDigest = modelDigest;
        emit TrainingStarted(round, rounds);
        _openRound(round, modelCodec, modelDigest);
    }

    /// @inheritdoc IFedTSSRounds
    function submitUpdate(uint256 round, uint64 codec, bytes32 digest) external {
        Round storage r = _rounds[round];
        _validateState(round, r.state, _bit(RoundState.Collecting));
        ClientSlot storage client = _clientSlots[msg.sender];
        uint16 position = client.position;
        if (position == 0) revert AccessNotAllowlistedClient(msg.sender);
        if (client.lastRound == round) revert RoundAlreadySubmitted(round, msg.sender);
        uint64 deadline = r.collectionDeadline;
        if (block.timestamp > deadline) revert RoundDeadlinePassed(round, deadline);
        _requireCid(codec, digest);

        uint16 index = r.clients;
        client.lastRound = uint64(round);
        _submitterWords[round][index >> 4] |= uint256(position) << ((index & 15) * 16);
        r.clients = index + 1;
        emit UpdateSubmitted(round, msg.sender, index, codec, digest);
        if (index + 1 == targetClients) _closeCollection(round, r, index + 1);
    }

    /// @inheritdoc IFedTSSRounds
    function closeCollection(uint256 round) external {
        Round storage r = _rounds[round];
        _validateState(round, r.state, _bit(RoundState.Collecting));
        uint64 deadline = r.collectionDeadline;
        if (block.timestamp <= deadline) revert RoundDeadlineNotReached(round, deadline);
        uint16 count = r.clients;
        if (count < minClients) revert RoundNotEnoughClients(round, count, minClients);
        _closeCollection(round, r, count);
    }

    /// @inheritdoc IFedTSSRounds
    function submitChecks(uint256 round, bytes calldata checks) external {
        Round storage r = _rounds[round];
        (MemberSlot storage m, uint64 checksDeadline,) = _requireCheckWindow(round, r);
        if (m.lastChecksRound == uint56(round)) revert RoundAlreadySubmittedChecks(round, msg.sender);
        if (block.timestamp > checksDeadline) revert RoundDeadlinePassed(round, checksDeadline);
        uint256 expected = CHECK_BYTES_PER_CLIENT * uint256(r.clients);
        if (checks.length != expected) revert RoundInvalidChecks(round, checks.length, expected);

        m.lastChecksRound = uint56(round);
        emit ChecksSubmitted(round, msg.sender, m.index, checks);
    }

    /// @inheritdoc IFedTSSRounds
    function submitComplaints(uint256 round, uint16[] calldata clientIndices, bytes[] calldata evidence) external {
        Round storage r = _rounds[round];
        (MemberSlot storage m,, uint64 complaintsDeadline) = _requireCheckWindow(round, r);
        if (m.lastComplaintsRound == uint56(round)) revert RoundAlreadySubmittedComplaints(round, msg.sender);
        if (block.timestamp > complaintsDeadline) revert RoundDeadlinePassed(round, complaintsDeadline);
        uint256 count = clientIndices.length;
        uint256 clientCount = r.clients;
        if (count != evidence.length || count > clientCount) {
            revert RoundInvalidComplaints(round, count, evidence.length);
        }
        for (uint256 i = 0; i < count; ++i) {
            if (clientIndices[i] >= clientCount) revert RoundInvalidComplaintClient(round, clientIndices[i], clientCount);
            uint256 length = evidence[i].length;
            if (length != KEY_BYTES && length != PROVEN_SECRET_BYTES) {
                revert RoundInvalidComplaintEvidence(round, clientIndices[i], length);
            }
        }

        m.lastComplaintsRound = uint56(round);
        emit ComplaintsSubmitted(round, msg.sender, m.index, clientIndices, evidence);
    }

    /// @inheritdoc IFedTSSRounds
    function submitAggregateShare(uint256 round, uint64 codec, bytes32 digest, uint256[] calldata includedClients)
        external
    {
        Round storage r = _rounds[round];
        RoundState current = r.state;
        _validateState(round, current, _bit(RoundState.Aggregating) | _bit(RoundState.Reconstructing));
        MemberSlot storage m = _members[msg.sender];
        uint8 memberIndex = m.index;
        if (memberIndex == 0) revert AccessNotCommitteeMember(msg.sender);
        if (m.lastShareRound == round) revert RoundAlreadySubmittedShare(round, msg.sender);
        uint64 deadline = r.committeeDeadline;
        if (block.timestamp > deadline) revert RoundDeadlinePassed(round, deadline);
        _requireCid(codec, digest);
        _requireClientSet(round, includedClients, r.clients);
        if (current == RoundState.Reconstructing) _requireFixedClientSet(round, r, includedClients);

        m.lastShareRound = uint64(round);
        uint256 count = ++_shareCounts[_setKey(round, includedClients)];
        r.shares += 1;
        emit AggregateShareSubmitted(round, msg.sender, memberIndex, codec, digest, includedClients);
        if (current == RoundState.Aggregating && count == threshold) _reachThreshold(round, r, includedClients);
    }

    /// @inheritdoc IFedTSSRounds
    function proposeModel(uint256 round, uint64 codec, bytes32 digest) external {
        Round storage r = _rounds[round];
        _validateState(round, r.state, _bit(RoundState.Reconstructing));
        MemberSlot storage m = _members[msg.sender];
        if (m.index == 0) revert AccessNotCommitteeMember(msg.sender);
        if (m.lastVoteRound == round) revert RoundAlreadyVoted(round, msg.sender);
        uint64 deadline = r.committeeDeadline;
        if (block.timestamp > deadline) revert RoundDeadlinePassed(round, deadline);
        _requireCid(codec, digest);

        m.lastVoteRound = uint64(round);
        uint256 count = ++_voteCounts[round][_modelKey(codec, digest)];
        r.votes += 1;
        emit ModelProposed(round, msg.sender, codec, digest);
        if (count == threshold) _finalize(round, r, codec, digest);
    }

    /// @inheritdoc IFedTSSRounds
    function failRound(uint256 round) external {
        Round storage r = _rounds[round];
        RoundState current = r.state;
        _validateState(
            round,
            current,
            _bit(RoundState.Collecting) | _bit(RoundState.Aggregating) | _bit(RoundState.Reconstructing)
        );
        uint64 deadline = current == RoundState.Collecting ? r.collectionDeadline : r.committeeDeadline;
        if (block.timestamp <= deadline) revert RoundDeadlineNotReached(round, deadline);
        if (current == RoundState.Collecting && r.clients >= minClients) revert RoundHasEnoughClients(round, r.clients);

        r.state = RoundState.Failed;
        r.stateAtFailure = current;
        emit RoundFailed(round, current);
    }

    /// @inheritdoc IFedTSSRounds
    function reopenRound(uint256 round) external {
        _validateState(round, _rounds[round].state, _bit(RoundState.Failed));
        _requireOperator();
        Training storage t = _training;
        uint64 latest = t.currentRound;
        if (round != latest) revert RoundNotLatest(round, latest);

        t.currentRound = latest + 1;
        _openRound(latest + 1, t.modelCodec, _modelDigest);
    }

    // ----------------------------------------------------------------------------- views

    /// @inheritdoc IFedTSSRounds
    function currentRound() external view returns (uint256) {
        return _training.currentRound;
    }

    /// @inheritdoc IFedTSSRounds
    function state(uint256 round) public view returns (RoundState) {
        return _rounds[round].state;
    }

    /// @inheritdoc IFedTSSRounds
    function roundInfo(uint256 round) external view returns (RoundInfo memory) {
        Round memory r = _rounds[round];
        return RoundInfo({
            state: r.state,
            stateAtFailure: r.stateAtFailure,
            clients: r.clients,
            shares: r.shares,
            votes: r.votes,
            collectionDeadline: r.collectionDeadline,
            committeeDeadline: r.committeeDeadline,
            includedClients: _fixedClientSet(round, r.includedWords)
        });
    }

    /// @inheritdoc IFedTSSRounds
    function latestModel() external view returns (uint256 finalizedRound, uint64 codec, bytes32 digest) {
        Training memory t = _training;
        return (t.modelRound, t.modelCodec, _modelDigest);
    }

    /// @inheritdoc IFedTSSRounds
    function trainingProgress() external view returns (uint64 roundsFinalized, uint64 finalizeUntil) {
        Training memory t = _training;
        return (t.roundsFinalized, t.finalizeUntil);
    }

    /// @inheritdoc IFedTSSRounds
    function committee() external view returns (address[] memory members, bytes32[] memory sealingKeys) {
        return (_committee, _sealingKeys);
    }

    /// @inheritdoc IFedTSSRounds
    function member(address account)
        external
        view
        returns (uint8 index, uint64 lastShareRound, uint64 lastVoteRound)
    {
        MemberSlot memory m = _members[account];
        return (m.index, m.lastShareRound, m.lastVoteRound);
    }

    /// @inheritdoc IFedTSSRounds
    function memberChecks(address account) external view returns (uint64 lastChecksRound, uint64 lastComplaintsRound) {
        MemberSlot memory m = _members[account];
        return (m.lastChecksRound, m.lastComplaintsRound);
    }

    /// @inheritdoc IFedTSSRounds
    function checkWindow(uint256 round) external view returns (uint64 checksDeadline, uint64 complaintsDeadline) {
        Round memory r = _rounds[round];
        if (checkPeriod == 0 || r.state != RoundState.Aggregating) return (0, 0);
        return _checkDeadlines(r.committeeDeadline);
    }

    /// @inheritdoc IFedTSSRounds
    function clients() external view returns (address[] memory) {
        return _clients;
    }

    /// @inheritdoc IFedTSSRounds
    function aggregation() external view returns (AggregationMode mode, uint8 modulusBits) {
        return (_mode, _modulusBits);
    }

    /// @inheritdoc IFedTSSRounds
    function clientKeys() external view returns (bytes32[] memory) {
        return _clientKeys;
    }

    /// @inheritdoc IFedTSSRounds
    function isClient(address account) external view returns (bool) {
        return _clientSlots[account].position != 0;
    }

    /// @inheritdoc IFedTSSRounds
    function submitters(uint256 round) external view returns (address[] memory accounts) {
        uint256 count = _rounds[round].clients;
        accounts = new address[](count);
        for (uint256 i = 0; i < count; ++i) {
            accounts[i] = _clients[_submitterPosition(round, i) - 1];
        }
    }

    /// @inheritdoc IFedTSSRounds
    function hasSubmitted(uint256 round, address account) external view returns (bool) {
        ClientSlot memory client = _clientSlots[account];
        if (client.position == 0 || client.lastRound < round || round == 0) return false;
        if (client.lastRound == round) return true;
        uint256 count = _rounds[round].clients;
        for (uint256 i = 0; i < count; ++i) {
            if (_submitterPosition(round, i) == client.position) return true;
        }
        return false;
    }

    /// @inheritdoc IFedTSSRounds
    function shareCount(uint256 round, uint256[] calldata includedClients) external view returns (uint256) {
        return _shareCounts[_setKey(round, includedClients)];
    }

    /// @inheritdoc IFedTSSRounds
    function voteCount(uint256 round, uint64 codec, bytes32 digest) external view returns (uint256) {
        return _voteCounts[round][_modelKey(codec, digest)];
    }

    // -------------------------------------------------------------------------- internals

    /// @dev The mode's ring and key count: `ShamirShares` takes neither, `MaskedSum` a ring of
    /// 32 to 64 whole-byte bits and one key per allowlisted client.
    function _requireAggregation(AggregationMode mode, uint8 modulusBits, uint256 keys, uint256 allowlisted)
        private
        pure
    {
        bool masked = mode == AggregationMode.MaskedSum;
        bool validBits = masked
            ? modulusBits >= MIN_MODULUS_BITS && modulusBits <= MAX_MODULUS_BITS && modulusBits % 8 == 0
            : modulusBits == 0;
        if (!validBits) revert ConfigInvalidModulusBits(mode, modulusBits);
        if (keys != (masked ? allowlisted : 0)) revert ConfigInvalidClientKeys(keys, allowlisted);
    }

    /// @dev The guard of {submitChecks} and {submitComplaints}: checks on, `round` Aggregating, the
    /// caller a member. Returns the caller's slot and the round's two deadlines.
    function _requireCheckWindow(uint256 round, Round storage r)
        private
        view
        returns (MemberSlot storage m, uint64 checksDeadline, uint64 complaintsDeadline)
    {
        if (checkPeriod == 0) revert RoundChecksDisabled();
        _validateState(round, r.state, _bit(RoundState.Aggregating));
        m = _members[msg.sender];
        if (m.index == 0) revert AccessNotCommitteeMember(msg.sender);
        (checksDeadline, complaintsDeadline) = _checkDeadlines(r.committeeDeadline);
    }

    /// @dev While a round is Aggregating its committee deadline is the close of collection plus
    /// `aggregationPeriod` ({_closeCollection}), so the windows are derived, not stored: one and
    /// two `checkPeriod` after the close. The constructor keeps both before the committee deadline.
    function _checkDeadlines(uint64 aggregationDeadline) private view returns (uint64, uint64) {
        uint64 closedAt = aggregationDeadline - aggregationPeriod;
        return (closedAt + checkPeriod, closedAt + 2 * checkPeriod);
    }

    function _openRound(uint256 round, uint64 modelCodec, bytes32 modelDigest) private {
        uint64 deadline = uint64(block.timestamp) + collectionPeriod;
        _rounds[round] = Round({
            state: RoundState.Collecting,
            stateAtFailure: RoundState.None,
            clients: 0,
            shares: 0,
            votes: 0,
            collectionDeadline: deadline,
            committeeDeadline: 0,
            includedWords: 0
        });
        emit RoundOpened(round, modelCodec, modelDigest, deadline);
    }

    /// @dev The t-th share over `includedClients`: that set becomes the round's only one.
    function _reachThreshold(uint256 round, Round storage r, uint256[] calldata includedClients) private {
        uint64 proposalDeadline = uint64(block.timestamp) + aggregationPeriod;
        r.state = RoundState.Reconstructing;
        r.committeeDeadline = proposalDeadline;
        uint256 words = includedClients.length;
        r.includedWords = uint8(words);
        for (uint256 i = 0; i < words; ++i) {
            _includedClients[round][i] = includedClients[i];
        }
        emit ThresholdReached(round, includedClients, proposalDeadline);
    }

    function _closeCollection(uint256 round, Round storage r, uint256 count) private {
        uint64 deadline = uint64(block.timestamp) + aggregationPeriod;
        r.state = RoundState.Aggregating;
        r.committeeDeadline = deadline;
        emit CollectionClosed(round, count, deadline);
    }

    function _finalize(uint256 round, Round storage r, uint64 codec, bytes32 digest) private {
        r.state = RoundState.Finalized;
        Training memory t = _training;
        t.roundsFinalized += 1;
        t.modelRound = uint64(round);
        t.modelCodec = codec;
        bool more = t.roundsFinalized < t.finalizeUntil;
        if (more) t.currentRound = uint64(round) + 1;
        _training = t;
        _modelDigest = digest;
        emit RoundFinalized(round, codec, digest);
        if (more) {
            _openRound(round + 1, codec, digest);
        } else {
            emit TrainingCompleted(round, codec, digest);
        }
    }

    /// @dev The one guard every round transaction starts with.
    function _validateState(uint256 round, RoundState current, bytes32 allowedStates) private pure {
        if (_bit(current) & allowedStates == bytes32(0)) revert RoundWrongState(round, allowedStates, current);
    }

    /// @dev Appends `accounts` (and, in `MaskedSum` mode, their `keys`) to the allowlist: no zero
    /// address, no account twice, no zero key. Positions are 1-based, in allowlist order.
    function _allowlist(address[] memory accounts, bytes32[] memory keys, bool masked) private {
        uint256 first = _clients.length;
        for (uint256 i = 0; i < accounts.length; ++i) {
            address account = accounts[i];
            if (account == address(0)) revert ConfigZeroAddress();
            if (_clientSlots[account].position != 0) revert ConfigDuplicateClient(account);
            if (masked && keys[i] == bytes32(0)) revert ConfigInvalidClientKey(account);
            _clientSlots[account].position = uint16(first + i + 1);
            _clients.push(account);
            if (masked) _clientKeys.push(keys[i]);
        }
    }

    function _requireOperator() private view {
        if (msg.sender != operator) revert AccessNotOperator(msg.sender);
    }

    function _requireCid(uint64 codec, bytes32 digest) private pure {
        if ((codec != CODEC_RAW && codec != CODEC_DAG_PB) || digest == bytes32(0)) revert RoundInvalidCid(codec, digest);
    }

    /// @dev A set is canonical: as few words as hold its highest index (last word non-zero), no
    /// index at or above `count`, at least `minClients` indices. The loop runs over at most
    /// ceil(count / 256) <= 16 words (a longer array is refused before it), so it is bounded.
    function _requireClientSet(uint256 round, uint256[] calldata includedClients, uint256 count) private view {
        uint256 length = includedClients.length;
        uint256 maxWords = (count + 255) >> 8;
        bool invalid = length == 0 || length > maxWords || includedClients[length - 1] == 0;
        if (!invalid && length == maxWords && count & 255 != 0) {
            invalid = includedClients[length - 1] >> (count & 255) != 0;
        }
        uint256 members = 0;
        for (uint256 i = 0; !invalid && i < length; ++i) {
            members += _popcount(includedClients[i]);
        }
        if (invalid || members < minClients) {
            revert RoundInvalidClientSet(round, includedClients, count, minClients);
        }
    }

    function _setKey(uint256 round, uint256[] calldata includedClients) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(round, includedClients));
    }

    /// @dev After the threshold only the set that reached it may gather shares: a second set
    /// with t public shares would make the difference of two public sums public.
    function _requireFixedClientSet(uint256 round, Round storage r, uint256[] calldata includedClients)
        private
        view
    {
        uint256 words = r.includedWords;
        bool same = includedClients.length == words;
        for (uint256 i = 0; same && i < words; ++i) {
            same = includedClients[i] == _includedClients[round][i];
        }
        if (!same) revert RoundClientSetFixed(round, _fixedClientSet(round, words), includedClients);
    }

    function _fixedClientSet(uint256 round, uint256 words) private view returns (uint256[] memory fixedClients) {
        fixedClients = new uint256[](words);
        for (uint256 i = 0; i < words; ++i) {
            fixedClients[i] = _includedClients[round][i];
        }
    }

    function _submitterPosition(uint256 round, uint256 index) private view returns (uint256) {
        return (_submitterWords[round][index >> 4] >> ((index & 15) * 16)) & 0xffff;
    }

    function _bit(RoundState s) private pure returns (bytes32) {
        return bytes32(uint256(1) << uint8(s));
    }

    function _modelKey(uint64 codec, bytes32 digest) private pure returns (bytes32) {
        return keccak256(abi.encode(codec, digest));
    }

    /// @dev Number of set bits, in constant gas (SWAR), so no transaction loops over clients.
    function _popcount(uint256 x) private pure returns (uint256) {
        unchecked {
            x = x - ((x >> 1) & 0x5555555555555555555555555555555555555555555555555555555555555555);
            x = (x & 0x3333333333333333333333333333333333333333333333333333333333333333)
                + ((x >> 2) & 0x3333333333333333333333333333333333333333333333333333333333333333);
            x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f;
            x = (x + (x >> 8)) & 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff;
            return (x * 0x0001000100010001000100010001000100010001000100010001000100010001) >> 240;
        }
    }
}
