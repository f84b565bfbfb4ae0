// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @title IFedTSSRounds
 * @notice The round state machine of fedtss: federated learning whose privacy comes from
 * threshold (Shamir) secret sharing. Clients submit the CID of their sealed shares, the
 * committee submits the CIDs of its aggregate shares, and t matching votes on the
 * reconstructed model finalize a round and open the next one.
 *
 * This interface holds the types, the custom errors and the events; `FedTSSRounds` holds the
 * behaviour.
 *
 * CIDs are passed as `(uint64 codec, bytes32 digest)`: a CID v1 with a sha2-256 multihash,
 * codec `0x55` (raw) or `0x70` (dag-pb). The full CID is rebuilt off chain from these two.
 *
 * Rounds are numbered from 1. Only the latest round can be live (Collecting, Aggregating or
 * Reconstructing); every earlier round is Finalized or Failed.
 *
 * A deployment fixes its aggregation mode ({AggregationMode}) for its whole life, so that no
 * agent can disagree with another about what a submitted manifest holds. The round state
 * machine is the same in both modes: the mode only tells agents how to read the CIDs.
 *
 * Client checks (`ShamirShares` mode, when `checkPeriod` > 0): once collection closes, each
 * member may post, within `checkPeriod` seconds, a projection of the share it received from
 * each client and its share of the client's sample count ({submitChecks}), and then, within
 * `checkPeriod` more, complaints that show the shares of clients that disagree with the others'
 * projections, or that the member could not open ({submitComplaints}). The
 * contract only enforces who, when and once, and records them in events; every check of the
 * shares themselves is done off chain.
 */
interface IFedTSSRounds {
    /// @notice The state of one round. `None` is a round that was never opened.
    enum RoundState {
        None,
        Collecting,
        Aggregating,
        Reconstructing,
        Finalized,
        Failed
    }

    /// @notice How clients hide their updates; fixed at deployment.
    /// `ShamirShares`: a client uploads n sealed Shamir shares of its update (one per member).
    /// `MaskedSum`: a client uploads one masked vector in Z_(2^modulusBits) and Shamir-shares only
    /// the seeds of its masks; pairwise masks come from the X25519 keys registered in `clientKeys`.
    enum AggregationMode {
        ShamirShares,
        MaskedSum
    }

    /// @notice The deployment configuration, fixed for the life of the contract.
    /// @param committee The n committee members; member j (1-based) receives Shamir share x = j.
    /// @param sealingKeys Each member's X25519 public key, in committee order, for sealing shares.
    /// @param threshold t: shares needed to reconstruct and matching votes needed to finalize.
    /// @param clients The allowlist of clients that may submit updates.
    /// @param minClients The fewest submissions a round may aggregate (at least 2).
    /// @param targetClients Submissions that close collection at once (at most 4096).
    /// @param collectionPeriod Seconds a round collects updates after it opens.
    /// @param aggregationPeriod Seconds the committee has for each of its two phases.
    /// @param mode How clients hide their updates (see {AggregationMode}).
    /// @param modulusBits The ring Z_(2^modulusBits) of masked updates: 32, 40, 48, 56 or 64 in
    /// `MaskedSum` mode, 0 in `ShamirShares` mode.
    /// @param clientKeys In `MaskedSum` mode, each client's X25519 public key for pairwise masks, in
    /// allowlist order; empty in `ShamirShares` mode.
    /// @param checkPeriod Seconds after collection closes in which members post share checks, and
    /// again after that their complaints (0: no checks). `ShamirShares` mode only, and
    /// 2 * checkPeriod < aggregationPeriod, so that both windows end before aggregation does.
    struct Config {
        address[] committee;
        bytes32[] sealingKeys;
        uint8 threshold;
        address[] clients;
        uint16 minClients;
        uint16 targetClients;
        uint64 collectionPeriod;
        uint64 aggregationPeriod;
        AggregationMode mode;
        uint8 modulusBits;
        bytes32[] clientKeys;
        uint64 checkPeriod;
    }

    /// @notice Everything a (re)started agent needs to know about one round.
    /// @param state The round's state.
    /// @param stateAtFailure The state the round was in when it failed (None unless Failed).
    /// @param clients Updates submitted so far (the submission order indexes bitmaps).
    /// @param shares Aggregate shares submitted so far (over any set before the threshold, over
    /// `includedClients` only after it).
    /// @param votes Model votes cast so far, for any model.
    /// @param collectionDeadline Last second at which updates are accepted.
    /// @param committeeDeadline Last second of the current committee phase (0 while Collecting).
    /// @param includedClients The client set that reached the threshold (empty before that), as
    /// 256-bit words: bit i of word w is the submitter of index 256 w + i.
    struct RoundInfo {
        RoundState state;
        RoundState stateAtFailure;
        uint16 clients;
        uint8 shares;
        uint8 votes;
        uint64 collectionDeadline;
        uint64 committeeDeadline;
        uint256[] includedClients;
    }

    // ---------------------------------------------------------------- configuration errors

    /// @dev The threshold must satisfy 2 <= t <= n.
    error ConfigInvalidThreshold(uint256 threshold, uint256 committeeSize);
    /// @dev The committee must have between 2 and 255 members, each with one sealing key.
    error ConfigInvalidCommittee(uint256 committeeSize, uint256 sealingKeys);
    /// @dev A committee member or client is the zero address.
    error ConfigZeroAddress();
    /// @dev An address appears twice in the committee.
    error ConfigDuplicateMember(address account);
    /// @dev An address appears twice in the client allowlist.
    error ConfigDuplicateClient(address account);
    /// @dev A member's X25519 sealing key is zero.
    error ConfigInvalidSealingKey(address member);
    /// @dev Client limits must satisfy 2 <= minClients <= targetClients <= 4096 and
    /// allowlist size <= 65535 (`startTraining` checks minClients against the allowlist).
    error ConfigInvalidClientLimits(uint256 minClients, uint256 targetClients, uint256 allowlisted);
    /// @dev `addClients` was given no account.
    error ConfigNoClientsToAdd();
    /// @dev Both time limits must be positive and at most 2**32 - 1 seconds (so that every
    /// deadline, `block.timestamp + period`, fits in a uint64).
    error ConfigInvalidPeriod(uint256 collectionPeriod, uint256 aggregationPeriod);
    /// @dev `modulusBits` must be 32, 40, 48, 56 or 64 in `MaskedSum` mode and 0 in `ShamirShares` mode.
    error ConfigInvalidModulusBits(AggregationMode mode, uint256 modulusBits);
    /// @dev `MaskedSum` mode needs one client key per allowlisted client (`keys` == `clients`);
    /// `ShamirShares` mode takes none (`keys` must be 0).
    error ConfigInvalidClientKeys(uint256 keys, uint256 clients);
    /// @dev Clients can be added only before the first round opens; round `round` has opened.
    error ConfigAllowlistClosed(uint256 round);
    /// @dev A client's X25519 masking key is zero.
    error ConfigInvalidClientKey(address client);
    /// @dev `checkPeriod` must be 0 in `MaskedSum` mode, and in `ShamirShares` mode 0 or such that
    /// 2 * checkPeriod < aggregationPeriod (the checks and complaints windows end before aggregation).
    error ConfigInvalidCheckPeriod(uint256 checkPeriod, uint256 aggregationPeriod);

    // ---------------------------------------------------------------------- caller errors

    /// @dev Only the operator (the deployer) may call this.
    error AccessNotOperator(address account);
    /// @dev `account` is not on the client allowlist.
    error AccessNotAllowlistedClient(address account);
    /// @dev `account` is not a committee member.
    error AccessNotCommitteeMember(address account);

    // ----------------------------------------------------------------------- round errors

    /// @dev The round is in state `actual`; the call needs one of `expectedStates`, a bitmap
    /// with bit `uint8(s)` set for each allowed state `s` (as OpenZeppelin's Governor does).
    error RoundWrongState(uint256 round, bytes32 expectedStates, RoundState actual);
    /// @dev The call's time limit for this round passed at `deadline`.
    error RoundDeadlinePassed(uint256 round, uint64 deadline);
    /// @dev The call is only allowed after `deadline`.
    error RoundDeadlineNotReached(uint256 round, uint64 deadline);
    /// @dev Collection cannot close with fewer than `minClients` updates: call `failRound`.
    error RoundNotEnoughClients(uint256 round, uint256 clients, uint256 minClients);
    /// @dev The round has enough updates to aggregate: call `closeCollection`, not `failRound`.
    error RoundHasEnoughClients(uint256 round, uint256 clients);
    /// @dev Only the latest round (`latest`) can be reopened.
    error RoundNotLatest(uint256 round, uint256 latest);
    /// @dev Training is running (round `round` is live or more rounds are requested).
    error TrainingInProgress(uint256 round);
    /// @dev The number of rounds to train must be positive.
    error TrainingInvalidRoundCount(uint256 rounds);
    /// @dev The first round opens only once the allowlist holds at least `minClients` clients.
    error TrainingNotEnoughClients(uint256 allowlisted, uint256 minClients);
    /// @dev A CID must be v1 with codec 0x55 (raw) or 0x70 (dag-pb) and a non-zero digest.
    error RoundInvalidCid(uint64 codec, bytes32 digest);
    /// @dev The included-clients words are not canonical (none, or a zero last word, or more words
    /// than `clients` needs), name a client index >= `clients`, or have fewer than `minClients` bits set.
    error RoundInvalidClientSet(uint256 round, uint256[] includedClients, uint256 clients, uint256 minClients);
    /// @dev `round` reached the threshold over the client set `fixedClients`; an aggregate share
    /// over any other set (`givenClients`) is refused, so that no second set can gather t public
    /// shares: two public sums over different sets would reveal the updates of the clients in
    /// only one of them.
    error RoundClientSetFixed(uint256 round, uint256[] fixedClients, uint256[] givenClients);
    /// @dev `account` already submitted an update in `round`.
    error RoundAlreadySubmitted(uint256 round, address account);
    /// @dev `member` already submitted an aggregate share in `round`.
    error RoundAlreadySubmittedShare(uint256 round, address member);
    /// @dev `member` already voted in `round`.
    error RoundAlreadyVoted(uint256 round, address member);
    /// @dev The deployment has no client checks (its `checkPeriod` is 0).
    error RoundChecksDisabled();
    /// @dev `member` already submitted its checks in `round`.
    error RoundAlreadySubmittedChecks(uint256 round, address member);
    /// @dev `member` already submitted its complaints in `round`.
    error RoundAlreadySubmittedComplaints(uint256 round, address member);
    /// @dev Checks hold 24 bytes per client of the round: `length` bytes given, `expectedLength` needed.
    error RoundInvalidChecks(uint256 round, uint256 length, uint256 expectedLength);
    /// @dev Complaints need as much evidence as client indices, at most one per client of the
    /// round: `clientIndices` indices and `evidence` pieces of evidence were given.
    error RoundInvalidComplaints(uint256 round, uint256 clientIndices, uint256 evidence);
    /// @dev The evidence about client `clientIndex` is `length` bytes: 32 (a key) or 96 (a proven secret) are read.
    error RoundInvalidComplaintEvidence(uint256 round, uint256 clientIndex, uint256 length);
    /// @dev A complaint names client index `clientIndex`, but the round has only `clients` updates.
    error RoundInvalidComplaintClient(uint256 round, uint256 clientIndex, uint256 clients);

    // ---------------------------------------------------------------------------- events

    /**
     * @notice Training started: `rounds` rounds will be finalized from the given model.
     * @param firstRound The round opened by this call.
     * @param rounds The number of rounds to finalize.
     */
    event TrainingStarted(uint256 indexed firstRound, uint64 rounds);

    /**
     * @notice The operator added `added` clients to the allowlist, which now holds `allowlisted`.
     * @param added The number of clients added.
     * @param allowlisted The allowlist's size after the addition.
     */
    event ClientsAdded(uint256 added, uint256 allowlisted);

    /**
     * @notice A round opened for updates, training from the model `(modelCodec, modelDigest)`.
     * @param round The round opened.
     * @param modelCodec Codec of the CID of the model to train from.
     * @param modelDigest sha2-256 digest of that CID.
     * @param collectionDeadline Last second (block timestamp) at which updates are accepted.
     */
    event RoundOpened(uint256 indexed round, uint64 modelCodec, bytes32 modelDigest, uint64 collectionDeadline);

    /**
     * @notice A client submitted the CID of its manifest (its sealed shares).
     * @dev The manifest CID is only in this event, not in storage: storing it would double
     * the cost of `submitUpdate`. Read it with a log query for this round.
     * @param round The round.
     * @param client The client.
     * @param index The submission order (0-based): the client's bit in included-client bitmaps.
     * @param codec Codec of the manifest CID.
     * @param digest sha2-256 digest of the manifest CID.
     */
    event UpdateSubmitted(uint256 indexed round, address indexed client, uint16 index, uint64 codec, bytes32 digest);

    /**
     * @notice Collection closed with `clients` updates; the committee aggregates them.
     * @param round The round.
     * @param clients The number of updates (bits 0..clients-1 of a bitmap are valid).
     * @param aggregationDeadline Last second at which aggregate shares are accepted.
     */
    event CollectionClosed(uint256 indexed round, uint256 clients, uint64 aggregationDeadline);

    /**
     * @notice A committee member submitted the CID of its aggregate share.
     * @dev The share CID is only in this event, not in storage (gas). Before the threshold,
     * shares over different client sets are all recorded here and counted per set; after
     * {ThresholdReached}, only shares over its set are accepted.
     * @param round The round.
     * @param member The member.
     * @param memberIndex The member's 1-based index (its Shamir evaluation point).
     * @param codec Codec of the aggregate share CID.
     * @param digest sha2-256 digest of the aggregate share CID.
     * @param includedClients The clients the share sums, as 256-bit words over submission order
     * (bit i of word w: index 256 w + i).
     */
    event AggregateShareSubmitted(
        uint256 indexed round,
        address indexed member,
        uint8 memberIndex,
        uint64 codec,
        bytes32 digest,
        uint256[] includedClients
    );

    /**
     * @notice A committee member posted its checks of the shares it received: per client of the
     * round, in submission order, 24 bytes: the projection of its share on the round's challenge,
     * its share of the client's sample count and its value on the client's squared-norm
     * polynomial, three 8-byte big-endian field elements.
     * @dev Only in this event, not in storage; compared off chain with the other members'.
     * @param round The round.
     * @param member The member.
     * @param memberIndex The member's 1-based index (its Shamir evaluation point).
     * @param checks 24 bytes per client: client i's projection at bytes 24i to 24i+7, the
     * member's share of its sample count at bytes 24i+8 to 24i+15, its norm value at bytes
     * 24i+16 to 24i+23.
     */
    event ChecksSubmitted(uint256 indexed round, address indexed member, uint8 memberIndex, bytes checks);

    /**
     * @notice A committee member complained about clients whose shares disagree or did not open,
     * showing for each what it got so that anyone can check the complaint.
     * @dev Only in this event, not in storage. `clientIndices[i]` goes with `evidence[i]`: 32
     * bytes (the key that opens the member's sealed share; any 32 bytes for a blob whose header
     * shows it is no honest client's) or 96 bytes proving the member's X25519 secret with the
     * share's ephemeral key (for a share that does not open). Empty: the member has nothing to
     * show, and says so, so that nobody waits for it.
     * @param round The round.
     * @param member The member.
     * @param memberIndex The member's 1-based index (its Shamir evaluation point).
     * @param clientIndices The clients complained about, by submission index.
     * @param evidence For each of them, a key (32 bytes) or a proven secret (96 bytes).
     */
    event ComplaintsSubmitted(
        uint256 indexed round, address indexed member, uint8 memberIndex, uint16[] clientIndices, bytes[] evidence
    );

    /**
     * @notice t aggregate shares over one client set were submitted: the committee can
     * reconstruct the sum of those clients' updates and vote on the new model.
     * @dev This fixes the round's client set: from now on an aggregate share over any other
     * set reverts with {RoundClientSetFixed}, so it is the only set that ever has t shares.
     * @param round The round.
     * @param includedClients The client set that reached the threshold first, now the only one accepted.
     * @param proposalDeadline Last second at which model votes are accepted.
     */
    event ThresholdReached(uint256 indexed round, uint256[] includedClients, uint64 proposalDeadline);

    /**
     * @notice A committee member voted for a reconstructed model. Conflicting votes are
     * recorded here and counted per model.
     * @param round The round.
     * @param member The member.
     * @param codec Codec of the model CID.
     * @param digest sha2-256 digest of the model CID.
     */
    event ModelProposed(uint256 indexed round, address indexed member, uint64 codec, bytes32 digest);

    /**
     * @notice t members voted for the same model: it is the round's result.
     * @param round The round.
     * @param codec Codec of the model CID.
     * @param digest sha2-256 digest of the model CID.
     */
    event RoundFinalized(uint256 indexed round, uint64 codec, bytes32 digest);

    /**
     * @notice The requested number of rounds is finalized; no round is open.
     * @param lastRound The round that finalized last.
     * @param codec Codec of the final model CID.
     * @param digest sha2-256 digest of the final model CID.
     */
    event TrainingCompleted(uint256 indexed lastRound, uint64 codec, bytes32 digest);

    /**
     * @notice The round missed a time limit and failed; the operator may reopen it.
     * @param round The round.
     * @param stateAtFailure The state the round was in: Collecting, Aggregating or Reconstructing.
     */
    event RoundFailed(uint256 indexed round, RoundState stateAtFailure);

    // ---------------------------------------------------------------------- transactions

    /**
     * @notice Adds `accounts` to the client allowlist, after those given at deployment: a
     * constructor stores two words per client, so one transaction holds a few hundred of them
     * under a block's (or a per-transaction) gas limit, and a larger allowlist is added in batches.
     *
     * Requirements:
     * - the caller is the operator;
     * - no round has opened yet (agents read the allowlist, and its keys, once);
     * - at least one account (else {ConfigNoClientsToAdd}), the allowlist stays at most 65535,
     *   no zero or repeated account;
     * - `MaskedSum` mode: one non-zero key per account; `ShamirShares` mode: no key.
     *
     * Emits {ClientsAdded}.
     *
     * @param accounts The clients to add, in allowlist order.
     * @param keys Their X25519 masking keys (`MaskedSum` mode), else empty.
     */
    function addClients(address[] memory accounts, bytes32[] memory keys) external;

    /**
     * @notice Opens round `currentRound() + 1`, training from the model `(modelCodec,
     * modelDigest)`, and keeps opening rounds until `rounds` of them are finalized.
     *
     * Requirements:
     * - the caller is the operator;
     * - no training is in progress (never started, or the last one completed);
     * - `rounds` > 0 and the CID is valid;
     * - for the first round, the allowlist holds at least `minClients` clients (it cannot change
     *   afterwards). The constructor does not check it, so that an allowlist too large for one
     *   transaction can be completed with {addClients} first.
     *
     * Emits {TrainingStarted} and {RoundOpened}.
     *
     * @param modelCodec Multicodec of the initial model's CID (0x55 raw, 0x70 dag-pb).
     * @param modelDigest SHA-256 digest of the initial model's CID.
     * @param rounds How many rounds to finalize before training completes.
     */
    function startTraining(uint64 modelCodec, bytes32 modelDigest, uint64 rounds) external;

    /**
     * @notice Submits the CID of the caller's manifest for `round`: its sealed shares, or in
     * `MaskedSum` mode its masked vector and its sealed shares of the masks' seeds.
     * Reaching `targetClients` closes collection in the same transaction.
     *
     * Requirements:
     * - `round` is Collecting and its collection deadline has not passed;
     * - the caller is allowlisted and has not submitted in `round`;
     * - the CID is valid.
     *
     * Emits {UpdateSubmitted}, and {CollectionClosed} if the target is reached.
     *
     * @param round The round being collected (the latest).
     * @param codec Multicodec of the manifest's CID: 0x55 (raw) for a blob of one chunk, 0x70 (dag-pb) above.
     * @param digest SHA-256 digest of the manifest's CID (its multihash without the prefix).
     */
    function submitUpdate(uint256 round, uint64 codec, bytes32 digest) external;

    /**
     * @notice Closes collection after the deadline. Anyone may call it (the keeper does).
     *
     * Requirements:
     * - `round` is Collecting and its collection deadline has passed;
     * - at least `minClients` updates were submitted (otherwise call {failRound}).
     *
     * Emits {CollectionClosed}.
     *
     * @param round The round whose collection deadline passed.
     */
    function closeCollection(uint256 round) external;

    /**
     * @notice Posts the caller's checks of the shares it received in `round`: 24 bytes per client
     * in submission order (see {ChecksSubmitted}). The contract records them without reading them.
     *
     * Requirements:
     * - the deployment has client checks (`checkPeriod` > 0);
     * - `round` is Aggregating and its checks deadline ({checkWindow}) has not passed;
     * - the caller is a committee member and has not posted checks in `round`;
     * - `checks` is 24 bytes per update submitted in `round`.
     *
     * Emits {ChecksSubmitted}.
     *
     * @param round The round being aggregated.
     * @param checks 24 bytes per client: client i's projection at bytes 24i to 24i+7, the
     * caller's share of its sample count at bytes 24i+8 to 24i+15, its norm value at bytes
     * 24i+16 to 24i+23.
     */
    function submitChecks(uint256 round, bytes calldata checks) external;

    /**
     * @notice Posts the caller's complaints in `round`: for each client whose share disagrees
     * with the checks, the key of the caller's sealed share from that client, so that anyone
     * can open the share and see who is wrong (and, for a share that opens to bytes that are no
     * share, that it is the client's); for each whose share does not open, the caller's X25519
     * secret with that share's ephemeral key and a proof of it, so that anyone can derive the key
     * and see the share does not open. No complaint at all says the caller has nothing to show.
     * The contract records them without reading them.
     *
     * Requirements:
     * - the deployment has client checks (`checkPeriod` > 0);
     * - `round` is Aggregating and its complaints deadline ({checkWindow}) has not passed;
     * - the caller is a committee member and has not posted complaints in `round`;
     * - `clientIndices` and `evidence` have the same length, at most the round's updates;
     * - every index is below the number of updates (repeats are recorded as given);
     * - every piece of evidence is 32 or 96 bytes.
     *
     * Emits {ComplaintsSubmitted}.
     *
     * @param round The round being aggregated.
     * @param clientIndices The clients complained about, by submission index.
     * @param evidence For each client, the 32-byte key that opens the caller's sealed share from
     * it, or the 96-byte proven secret of one that does not open.
     */
    function submitComplaints(uint256 round, uint16[] calldata clientIndices, bytes[] calldata evidence) external;

    /**
     * @notice Submits the CID of the caller's aggregate share over the clients in
     * `includedClients` (256-bit words over submission order). The t-th share over one set moves
     * the round to Reconstructing and fixes that set as the round's only one. Shares over it
     * are still accepted while Reconstructing (extra shares help the committee correct
     * errors); shares over any other set are refused from then on, so that no two sets ever
     * both have t public shares (the difference of their sums would reveal a client's update).
     * A member that cannot include every client of the fixed set posts nothing.
     *
     * Requirements:
     * - `round` is Aggregating or Reconstructing and the phase's deadline has not passed;
     * - the caller is a committee member and has not submitted a share in `round`;
     * - `includedClients` has at least `minClients` bits, all below the number of updates, in
     *   as few words as hold its highest bit (so one set has one encoding);
     * - if `round` is Reconstructing, `includedClients` is the set of its {ThresholdReached};
     * - the CID is valid.
     *
     * Emits {AggregateShareSubmitted}, and {ThresholdReached} for the t-th share over the
     * first set to reach t.
     *
     * @param round The round being aggregated.
     * @param codec Multicodec of the aggregate share's CID: 0x55 (raw) for a blob of one chunk, 0x70 (dag-pb) above.
     * @param digest SHA-256 digest of the aggregate share's CID (its multihash without the prefix).
     * @param includedClients Bit i of word w set: the submitter of index 256 w + i is in this aggregate.
     */
    function submitAggregateShare(uint256 round, uint64 codec, bytes32 digest, uint256[] calldata includedClients)
        external;

    /**
     * @notice Votes for the reconstructed model of `round`. The t-th vote for one model
     * finalizes the round and opens the next one unless training is complete.
     *
     * Requirements:
     * - `round` is Reconstructing and its proposal deadline has not passed;
     * - the caller is a committee member and has not voted in `round`;
     * - the CID is valid.
     *
     * Emits {ModelProposed}; on the t-th matching vote also {RoundFinalized} and then
     * {RoundOpened} for the next round or {TrainingCompleted}.
     *
     * @param round The round being reconstructed.
     * @param codec Multicodec of the model's CID: 0x55 (raw) for a blob of one chunk, 0x70 (dag-pb) above.
     * @param digest SHA-256 digest of the model's CID (its multihash without the prefix).
     */
    function proposeModel(uint256 round, uint64 codec, bytes32 digest) external;

    /**
     * @notice Marks a stalled round Failed. Anyone may call it (the keeper does).
     *
     * Requirements:
     * - `round` is Collecting, Aggregating or Reconstructing and that phase's deadline passed;
     * - if Collecting, fewer than `minClients` updates were submitted (otherwise call
     *   {closeCollection}).
     *
     * Emits {RoundFailed}.
     *
     * @param round The stalled round (the latest).
     */
    function failRound(uint256 round) external;

    /**
     * @notice Opens round `round + 1` from the last finalized model (or the initial model)
     * after `round` failed.
     *
     * Requirements:
     * - the caller is the operator;
     * - `round` is Failed and is the latest round.
     *
     * Emits {RoundOpened}.
     *
     * @param round The failed round; round + 1 is opened.
     */
    function reopenRound(uint256 round) external;

    // ----------------------------------------------------------------------------- views

    /// @notice The latest round opened (0 before training starts).
    function currentRound() external view returns (uint256);

    /// @notice The state of `round` (None for a round never opened).
    function state(uint256 round) external view returns (RoundState);

    /// @notice State, counts, deadlines and agreed (fixed) client set of `round`.
    function roundInfo(uint256 round) external view returns (RoundInfo memory);

    /// @notice The model the latest round trains from: the last model finalized since the
    /// latest {startTraining}, or that call's initial model (`finalizedRound` = 0).
    function latestModel() external view returns (uint256 finalizedRound, uint64 codec, bytes32 digest);

    /// @notice Rounds finalized since deployment, and the count at which training completes.
    function trainingProgress() external view returns (uint64 roundsFinalized, uint64 finalizeUntil);

    /// @notice The committee in index order (member j at position j-1) and their X25519 keys.
    function committee() external view returns (address[] memory members, bytes32[] memory sealingKeys);

    /// @notice A member's 1-based index (0 for non-members) and the last rounds in which it
    /// submitted a share and voted (0 if never). Earlier rounds are in the events.
    function member(address account)
        external
        view
        returns (uint8 index, uint64 lastShareRound, uint64 lastVoteRound);

    /// @notice The last rounds in which `account` posted checks and complaints (0 if never).
    /// Earlier rounds are in the events.
    function memberChecks(address account) external view returns (uint64 lastChecksRound, uint64 lastComplaintsRound);

    /// @notice Seconds members have to post checks after collection closes, and again complaints
    /// after that (0: the deployment has no client checks).
    function checkPeriod() external view returns (uint64);

    /// @notice The last seconds at which checks and complaints are accepted in `round`: the
    /// close of collection plus one and two `checkPeriod`. Both are 0 unless the deployment has
    /// checks and `round` is Aggregating; for a round past that, add the periods to its
    /// {CollectionClosed} `aggregationDeadline` minus `aggregationPeriod`.
    function checkWindow(uint256 round) external view returns (uint64 checksDeadline, uint64 complaintsDeadline);

    /// @notice The client allowlist.
    function clients() external view returns (address[] memory);

    /// @notice The deployment's aggregation mode and, in `MaskedSum` mode, the bits of its ring
    /// Z_(2^modulusBits) (0 in `ShamirShares` mode).
    function aggregation() external view returns (AggregationMode mode, uint8 modulusBits);

    /// @notice The clients' X25519 masking keys in allowlist order (client i's key at position i);
    /// empty in `ShamirShares` mode.
    function clientKeys() external view returns (bytes32[] memory);

    /// @notice Whether `account` is on the client allowlist.
    function isClient(address account) external view returns (bool);

    /// @notice The clients that submitted in `round`, in submission order.
    function submitters(uint256 round) external view returns (address[] memory);

    /// @notice Whether `account` submitted an update in `round`.
    function hasSubmitted(uint256 round, address account) external view returns (bool);

    /// @notice Aggregate shares submitted in `round` over exactly the set `includedClients`.
    function shareCount(uint256 round, uint256[] calldata includedClients) external view returns (uint256);

    /// @notice Votes cast in `round` for the model `(codec, digest)`.
    function voteCount(uint256 round, uint64 codec, bytes32 digest) external view returns (uint256);
}
