"""What the explorer and the operator CLI read from a federation: rounds, parties, transactions.

:class:`FederationView` turns the contract's views and events into plain records
(:class:`Overview`, :class:`RoundSummary`, :class:`RoundDetail`, :class:`TxDetail`, ...) that
a template or a rich table renders as they are. It only reads: it holds no account and never
signs. Events are fetched once and then incrementally, receipts and block timestamps are cached
by hash and number, so a page costs a handful of RPC calls however long the federation ran.

Confirmations and reorganizations. With ``confirmations=k``, rounds, their events and the
contract's views are read as they stood at the *confirmed head*, block ``head - k``: a
reorganization shallower than k blocks never shows. A deeper one (or any, with k = 0) is
followed: the view remembers the hash of every block it cached something from (events,
receipts, timestamps) and, whenever the head changes, checks that the chain still has the
newest of them. If not, it finds the newest one the chain still has (the fork point,
:func:`~fedtss.chain.checkpoint.compute_fork_point`, as agents do) and forgets everything it
cached above it, so the next page reads the new branch.

A dropped node surfaces as :class:`~fedtss.errors.ChainUnavailable` (a
:class:`~fedtss.errors.ChainError`) from every method; the caller shows it and simply asks
again later (nothing here is left half-updated by a failed call). Everything it asks the node
goes through ``fedtss.chain`` (:class:`~fedtss.chain.RoundsContract` and its
:class:`~fedtss.chain.ChainReader`), which answers in plain values.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.config import MAX_CONFIRMATIONS
from agents.records import EXCLUSIONS_FILE, ExclusionRecord, read_exclusions
from fedtss.chain import (
    AggregateShareSubmitted,
    Block,
    ChainEvent,
    ClientSet,
    DecodedCall,
    Deployment,
    ModelProposed,
    Receipt,
    RoundEvent,
    RoundFinalized,
    RoundInfo,
    RoundOpened,
    RoundsContract,
    RoundState,
    TrainingCompleted,
    Transaction,
    UpdateSubmitted,
    checksum_address,
    cid_or_none,
    event_arguments,
    is_address,
)
from fedtss.chain.checkpoint import BlockRef, compute_fork_point
from fedtss.chain.redaction import display_url
from fedtss.chain.rounds import ExclusionReport, RoundRecord, apply_exclusions, fold_rounds
from fedtss.cid import is_valid_cid, parse_cid
from fedtss.errors import ChainError, ConfigError
from orchestration.explorer.params import decimal_or_none
from orchestration.run_layout import RunLayout

__all__ = [
    "AddressDetail",
    "BlockSummary",
    "CidUse",
    "DecodedCall",
    "Exclusion",
    "FederationView",
    "Mark",
    "Overview",
    "RoundDetail",
    "RoundSummary",
    "Share",
    "Submission",
    "TxDetail",
    "Vote",
    "client_set_indices",
    "chain_now",
    "classify_query",
    "exclusions_from_records",
    "utc_datetime",
]

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
#: How far back the address page scans blocks on a node without Otterscan's ``ots_`` API.
ADDRESS_SCAN_BLOCKS = 2000


# ------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Mark:
    """One step of a round's timeline: which event, in which block, at what chain time."""

    label: str
    block: int
    timestamp: int
    tx_hash: str


@dataclass(frozen=True)
class Submission:
    """A client's update: its submission index is its bit in included-client bitmaps."""

    index: int
    client: str
    manifest_cid: str
    tx_hash: str
    block: int
    gas_used: int
    included: bool | None  # None until the committee agreed on a client set


@dataclass(frozen=True)
class Share:
    """A member's aggregate share and the client set it sums."""

    member_index: int
    member: str
    cid: str
    included_clients: tuple[int, ...]
    matches_agreed_set: bool | None
    tx_hash: str
    block: int
    gas_used: int


@dataclass(frozen=True)
class Vote:
    """A member's vote for a reconstructed model."""

    member: str
    model_cid: str
    matches: bool | None  # agrees with the finalized model (or the leading one while open)
    tx_hash: str
    block: int
    gas_used: int


@dataclass(frozen=True)
class Exclusion:
    """A party left out of a round, who says so and why."""

    party: str
    kind: str  # "client" or "member"
    reason: str
    source: str  # "chain", or the member record file that reported it (nodes/member-2/exclusions.jsonl)


@dataclass
class RoundSummary:
    """One row of the rounds list."""

    round: int
    state: RoundState
    marks: list[Mark] = field(default_factory=list)
    submitted: int = 0
    participants: int | None = None
    model_cid: str | None = None  # the model the round trains from
    result_cid: str | None = None  # the finalized model
    failed_in: RoundState | None = None

    def mark(self, label: str) -> Mark | None:
        return next((m for m in self.marks if m.label == label), None)


@dataclass
class RoundDetail:
    """Everything the round page shows."""

    summary: RoundSummary
    info: RoundInfo
    submissions: list[Submission]
    shares: list[Share]
    votes: list[Vote]
    exclusions: list[Exclusion]
    agreed_set: tuple[int, ...] | None
    gas_by_kind: dict[str, int]
    record: RoundRecord  # the round as its events tell it (fedtss.chain.rounds), exclusion records included


@dataclass(frozen=True)
class Overview:
    """The federation at a glance."""

    chain_id: int
    rpc_url: str
    address: str
    operator: str | None
    committee: tuple[tuple[int, str, str], ...]  # (index, address, sealing key hex)
    threshold: int
    clients: tuple[str, ...]
    min_clients: int
    target_clients: int
    collection_period: int
    aggregation_period: int
    current_round: int
    info: RoundInfo | None
    head_block: int
    chain_time: int
    latest_model_cid: str | None
    latest_model_round: int
    rounds_finalized: int
    finalize_until: int
    submitted: tuple[str, ...]
    check_period: int = 0  # seconds for share checks after collection closes, and again complaints (0: off)

    @property
    def deadline(self) -> int | None:
        """The deadline that matters now: collection while Collecting, else the committee's."""
        if self.info is None or self.info.state not in (RoundState.Collecting, RoundState.Aggregating,
                                                          RoundState.Reconstructing):
            return None
        if self.info.state is RoundState.Collecting:
            return self.info.collection_deadline
        return self.info.committee_deadline


@dataclass(frozen=True)
class BlockSummary:
    number: int
    hash: str
    timestamp: int
    gas_used: int
    transactions: tuple[tuple[str, str, str], ...]  # (hash, from, short description)


@dataclass
class TxDetail:
    hash: str
    block: int | None
    from_: str
    to: str | None
    value: int
    nonce: int
    status: int | None
    gas_used: int | None
    gas_limit: int
    effective_gas_price: int | None
    function: str | None
    arguments: list[tuple[str, str]]
    events: list[tuple[str, list[tuple[str, str]], int]]  # (name, args, log index)
    other_logs: int
    created: str | None
    round: int | None
    revert: str | None = None  # the decoded custom error of a reverted call to the contract
    input_data: str = "0x"  # the raw calldata, always shown
    call_problem: str | None = None  # why a call to the contract did not decode


@dataclass
class AddressDetail:
    address: str
    roles: list[str]
    balance: int
    nonce: int
    is_contract: bool
    transactions: list[tuple[str, int, str]]  # (hash, block, description)
    scanned: str  # how the list was found, shown to the reader


@dataclass(frozen=True)
class CidUse:
    """Where a CID appears on chain."""

    kind: str
    round: int
    party: str | None
    tx_hash: str
    block: int


# ------------------------------------------------------------------------ pure helpers


def client_set_indices(words: Sequence[int]) -> tuple[int, ...]:
    """The submission indices of an ABI-level ``includedClients`` (256-bit words, least significant first)."""
    return tuple(ClientSet.from_words(int(word) for word in words))


def chain_now(latest_block_timestamp: int, wall_clock: float) -> int:
    """The time the next block will carry: anvil stamps it with the later of the two."""
    return max(latest_block_timestamp, int(wall_clock))


def classify_query(text: str, *, current_round: int) -> tuple[str, str]:
    """What a search box entry names: ``(kind, normalized value)``; kind "unknown" if nothing.

    Plain numbers are rounds while they are at most the current round, blocks otherwise;
    "block N" or "#N" always mean a block. Numbers are written in the digits 0-9 (``"²"`` is
    no number) and have at most 78 digits; anything else is "unknown". Never raises.
    """
    query = text.strip()
    lowered = query.lower()
    for prefix in ("block ", "#"):
        if lowered.startswith(prefix) and (number := decimal_or_none(lowered[len(prefix):].strip())) is not None:
            return "block", str(number)
    if lowered.startswith("round ") and (number := decimal_or_none(lowered[6:].strip())) is not None:
        return "round", str(number)
    if (number := decimal_or_none(query)) is not None:
        return ("round", str(number)) if 1 <= number <= current_round else ("block", str(number))
    if _TX_HASH.fullmatch(query):
        return "hash", query.lower()
    if is_address(query):
        return "address", checksum_address(query)
    if is_valid_cid(query):
        return "cid", parse_cid(query)
    return "unknown", query


def exclusions_from_records(records: Iterable[ExclusionRecord], source: str) -> list[Exclusion]:
    """The explorer's view of members' exclusion records: the party, its kind, why and who says so."""
    return [_recorded_exclusion(record, source) for record in records]


def _recorded_exclusion(record: ExclusionReport, source: str) -> Exclusion:
    if record.client is not None:
        party, kind = _checksummed(record.client), "client"
    else:
        party = _checksummed(record.member_address) if record.member_address else f"member {record.member}"
        kind = "member"
    return Exclusion(party, kind, f"{record.reason} (reported by {_checksummed(record.by)})", source)


def _checksummed(address: str) -> str:
    """An address as the pages show them; a record's text that is not one is shown as it is."""
    try:
        return checksum_address(address)
    except ValueError:
        return address


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, RoundState):
        return value.name
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def _render_argument(name: str, value: Any) -> str:
    """Codecs with their multicodec name, deadlines with their UTC time."""
    if name.lower().endswith("codec") and isinstance(value, int):
        return f"{value} (0x{value:x} {_CODECS.get(value, 'unknown codec')})"
    if name.lower().endswith("deadline") and isinstance(value, int) and value:
        when = utc_datetime(value)
        return f"{value} ({when:%Y-%m-%d %H:%M:%S} UTC)" if when else str(value)
    return _render(value)


def utc_datetime(timestamp: int) -> datetime | None:
    """``timestamp`` in UTC; None when it is beyond what Python's calendar holds (a uint64 can be)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


_CODECS = {0x55: "raw", 0x70: "dag-pb"}
_CID_PAIRS = (("codec", "digest"), ("modelCodec", "modelDigest"))


def render_arguments(arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    """ABI-level arguments (a decoded call's, or :func:`~fedtss.chain.event_arguments`) as ``(name,
    text)``, as the contract has them; a (codec, digest) pair gains the CID it encodes."""
    rendered = [(name, _render_argument(name, value)) for name, value in arguments.items()]
    for codec_key, digest_key in _CID_PAIRS:
        if codec_key in arguments and digest_key in arguments:
            cid = cid_or_none(int(arguments[codec_key]), bytes(arguments[digest_key]))
            if cid:
                rendered.append(("cid" if codec_key == "codec" else "modelCid", cid))
    if "includedClients" in arguments:
        included = client_set_indices(arguments["includedClients"])
        rendered.append(("includedClients (indices)", _render(list(included))))
    return rendered


#: The label of each step of a round's timeline, by the state the round entered there.
_MARK_LABELS: Mapping[RoundState, str] = {
    RoundState.Collecting: "opened", RoundState.Aggregating: "collection closed",
    RoundState.Reconstructing: "threshold reached", RoundState.Finalized: "finalized", RoundState.Failed: "failed",
}


# ------------------------------------------------------------------------------- reader


class FederationView:
    """Read-only access to one deployed federation on one JSON-RPC node."""

    def __init__(self, rpc_url: str, deployment: Deployment, *, run_dir: Path | None = None,
                 timeout: float = 5.0, confirmations: int = 0) -> None:
        if isinstance(confirmations, bool) or not isinstance(confirmations, int) \
                or not 0 <= confirmations <= MAX_CONFIRMATIONS:
            raise ConfigError(f"confirmations must be an integer in [0, {MAX_CONFIRMATIONS}], "
                              f"got {confirmations!r:.40}")
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.run_dir = run_dir
        self.confirmations = confirmations
        self.contract = RoundsContract.at(rpc_url, deployment, timeout=timeout)
        self.chain = self.contract.chain  # blocks, transactions, receipts: read-only, plain values
        self._lock = threading.RLock()
        self._events: list[ChainEvent] = []
        self._next_block = deployment.deploy_block
        self._receipts: dict[str, Receipt] = {}
        self._timestamps: dict[int, int] = {}
        self._cached_blocks: dict[int, str] = {}  # number -> hash of each block something above came from
        self._checked_head: str | None = None  # the head whose chain the caches were last checked against
        self._operator: str | None = None

    # ----------------------------------------------------------------------- plumbing

    def head(self) -> tuple[int, int]:
        """``(latest block number, its timestamp)``."""
        block = self.latest_block()
        return block.number, block.timestamp

    def latest_block(self) -> Block:
        """The latest block; if the chain switched branches since the last look, what was cached
        from the lost branch is forgotten first."""
        block = self.chain.latest_block()
        with self._lock:
            if block.hash != self._checked_head:
                self._forget_lost_branch(block)
                self._checked_head = block.hash
        return block

    def confirmed_head(self) -> int:
        """The newest block with ``confirmations`` blocks on top: what rounds and events count."""
        return self.head()[0] - self.confirmations

    def _forget_lost_branch(self, head: Block) -> None:
        """Drop everything cached above the fork point if the chain lost the newest cached block.

        The head and its parent are known without a request; other cached blocks are read
        newest first until one is still on the chain (usually the first: no reorganization).
        """
        cached = [BlockRef(number, block_hash) for number, block_hash in sorted(self._cached_blocks.items())]
        if not cached:
            return
        canonical: dict[int, str | None] = {head.number: head.hash, head.number - 1: head.parent_hash}
        for block in reversed(cached):
            if block.number > head.number:
                canonical[block.number] = None  # the chain is shorter than what was cached
            elif block.number not in canonical:
                canonical[block.number] = self._block_hash(block.number)
            if canonical[block.number] == block.hash:
                break
        if canonical[cached[-1].number] != cached[-1].hash:
            self._forget_after(compute_fork_point(cached, canonical, floor=self.deployment.deploy_block - 1))

    def _forget_after(self, fork: int) -> None:
        """Forget every event, receipt, timestamp and block hash cached from blocks after ``fork``."""
        self._events = [e for e in self._events if e.block_number <= fork]
        self._next_block = min(self._next_block, fork + 1)
        self._receipts = {h: r for h, r in self._receipts.items() if r.block_number <= fork}
        self._timestamps = {n: t for n, t in self._timestamps.items() if n <= fork}
        self._cached_blocks = {n: h for n, h in self._cached_blocks.items() if n <= fork}

    def _remember_block(self, number: int, block_hash: str) -> None:
        """Note that something cached came from this block; a new hash for a known number means the
        chain changed at or below it, so what was cached from there on is forgotten and the next
        look at the head checks the rest."""
        if self._cached_blocks.get(number, block_hash) != block_hash:
            self._forget_after(number - 1)
            self._checked_head = None
        self._cached_blocks[number] = block_hash

    def _block_hash(self, number: int) -> str | None:
        block = self.chain.block(number)
        return None if block is None else block.hash

    def events(self) -> list[ChainEvent]:
        """Every event of the contract up to the confirmed head, in chain order (fetched incrementally)."""
        return self._events_until(self.confirmed_head())

    def _events_until(self, confirmed: int) -> list[ChainEvent]:
        with self._lock:
            if confirmed >= self._next_block:
                # The range's last hash first, then the logs: logs of a newer branch under an older
                # hash are caught at the next look; the other way round they would be trusted.
                last_hash = self._block_hash(confirmed)
                if last_hash is None:
                    return [e for e in self._events if e.block_number <= confirmed]  # the chain just got shorter
                logs = self.chain.logs(self.contract.address, self._next_block, confirmed)
                for log in logs:
                    self._remember_block(log.block_number, log.block_hash)
                self._remember_block(confirmed, last_hash)
                self._events.extend(self.contract.decode_logs(logs))
                self._next_block = confirmed + 1
            return [e for e in self._events if e.block_number <= confirmed]

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined transaction (cached); None if the chain has none."""
        with self._lock:
            if tx_hash not in self._receipts:
                receipt = self.chain.receipt(tx_hash)
                if receipt is None:
                    return None
                self._remember_block(receipt.block_number, receipt.block_hash)
                self._receipts[tx_hash] = receipt
            return self._receipts[tx_hash]

    def gas_used(self, tx_hash: str) -> int:
        """The gas a mined transaction used, from its cached receipt."""
        receipt = self.receipt(tx_hash)
        if receipt is None:
            raise ChainError(f"the chain has no receipt for transaction {tx_hash} (reorganized away?)")
        return receipt.gas_used

    def timestamp(self, block: int) -> int:
        with self._lock:
            if block not in self._timestamps:
                found = self.chain.block(block)
                if found is None:
                    raise ChainError(f"the chain has no block {block} (it got shorter?)")
                self._remember_block(block, found.hash)
                self._timestamps[block] = found.timestamp
            return self._timestamps[block]

    def operator(self) -> str | None:
        """The deployer, who alone may start training and reopen rounds."""
        if self._operator is None:
            try:
                tx = self.chain.transaction(self.deployment.tx_hash)
            except ChainError:
                return None
            if tx is None:
                return None
            self._operator = tx.sender
        return self._operator

    def read(self, what: str, call: Any, *args: Any) -> Any:
        """``call(*args)``, a call of ``fedtss.chain`` that reads ``what``: a dropped node is
        already ChainUnavailable there, naming the node and the call."""
        return call(*args)

    def _view_at(self, block: int, function: str, *args: Any) -> Any:
        """The contract's view ``function(*args)`` on the state after ``block`` (the confirmed head;
        before the deploy block is confirmed, the state it deployed with)."""
        at = max(block, self.deployment.deploy_block)
        return self.contract.call(function, *args, block=at)

    def _round_info_at(self, block: int, round_: int) -> RoundInfo:
        at = max(block, self.deployment.deploy_block)
        return self.contract.round_info(round_, block=at)

    def _latest_model_at(self, block: int) -> tuple[int, str | None]:
        at = max(block, self.deployment.deploy_block)
        return self.contract.latest_model(block=at)

    # ----------------------------------------------------------------------- overview

    def overview(self) -> Overview:
        """The federation at the confirmed head (the head itself with no confirmations)."""
        config = self.deployment.config
        head, timestamp = self.head()
        at = head - self.confirmations
        current = self._view_at(at, "currentRound") if at >= self.deployment.deploy_block else 0
        info = self._round_info_at(at, current) if current else None
        latest_round, latest_cid = self._latest_model_at(at)
        done, until = self._view_at(at, "trainingProgress")
        committee = self.read("committee", self.contract.committee)
        submitted = tuple(self._view_at(at, "submitters", current)) if current else ()
        return Overview(
            chain_id=self.chain.chain_id(),
            rpc_url=display_url(self.rpc_url),  # a hosted node's URL carries its API key
            address=self.contract.address,
            operator=self.operator(),
            committee=tuple((j, address, _hex(key)) for j, (address, key) in enumerate(committee, start=1)),
            threshold=config.threshold,
            clients=tuple(self.read("clients", self.contract.clients)),
            min_clients=config.min_clients,
            target_clients=config.target_clients,
            collection_period=config.collection_period,
            aggregation_period=config.aggregation_period,
            current_round=current,
            info=info,
            head_block=head,
            chain_time=chain_now(timestamp, time.time()),
            latest_model_cid=latest_cid,
            latest_model_round=latest_round,
            rounds_finalized=done,
            finalize_until=until,
            submitted=submitted,
            check_period=config.check_period,
        )

    # ------------------------------------------------------------------------- rounds

    def rounds(self) -> list[RoundSummary]:
        """Every round opened by the confirmed head, with its timeline, oldest first."""
        return self._rounds_at(self.confirmed_head())

    def _rounds_at(self, confirmed: int) -> list[RoundSummary]:
        """Every round opened by block ``confirmed``, its state as its events fold (the contract's
        ``state(round)`` at that block, without asking for it)."""
        records = self._records_at(confirmed)
        return [self._summary(records[r]) for r in sorted(records)]

    def _records_at(self, confirmed: int) -> dict[int, RoundRecord]:
        """Every round opened by block ``confirmed``, folded from its events (fedtss.chain.rounds)."""
        return fold_rounds(self._events_until(confirmed))

    def _summary(self, record: RoundRecord) -> RoundSummary:
        """A round's row: the record's facts, each step with its block's timestamp."""
        marks = [Mark(_MARK_LABELS[m.state], m.block_number, self.timestamp(m.block_number), m.tx_hash)
                 for m in record.timeline]
        return RoundSummary(round=record.round, state=record.state, marks=marks, submitted=record.submitted,
                            participants=record.participants, model_cid=record.model_cid,
                            result_cid=record.result_cid, failed_in=record.failed_in)

    def round_record(self, round_: int) -> RoundRecord | None:
        """One round as its events tell it at the confirmed head (no receipt or view is read), or
        None if it was not opened by then."""
        return self._records_at(self.confirmed_head()).get(round_)

    def round(self, round_: int) -> RoundDetail | None:
        """One round in full at the confirmed head, or None if it was not opened by then."""
        confirmed = self.confirmed_head()
        folded = self._records_at(confirmed).get(round_)
        if folded is None:
            return None
        summary = self._summary(folded)
        record = self._with_recorded_exclusions(folded)
        events = [e for e in self._events_until(confirmed) if isinstance(e, RoundEvent) and e.round == round_]
        info = self._round_info_at(confirmed, round_)
        agreed = tuple(record.included_clients) if record.included_clients else None
        submissions = [self._submission(e, agreed) for e in record.submissions]
        shares = [self._share(e, agreed) for e in record.shares]
        votes = self._votes(record.votes, record.result_cid)
        exclusions = self._exclusions(record, submissions, shares, votes)
        gas: dict[str, int] = {}
        for tx_hash in dict.fromkeys(e.tx_hash for e in events):
            name, call_round = self.decoded_call(tx_hash)
            if call_round not in (None, round_) and name != "reopenRound":
                continue  # e.g. the vote that finalized round n-1 also opened round n: it is n-1's gas
            gas[name or "?"] = gas.get(name or "?", 0) + self.gas_used(tx_hash)
        return RoundDetail(summary, info, submissions, shares, votes, exclusions, agreed, gas, record)

    def _submission(self, event: UpdateSubmitted, agreed: tuple[int, ...] | None) -> Submission:
        return Submission(event.index, event.client, event.manifest_cid, event.tx_hash, event.block_number,
                          self.gas_used(event.tx_hash), None if agreed is None else event.index in agreed)

    def _share(self, event: AggregateShareSubmitted, agreed: tuple[int, ...] | None) -> Share:
        included = tuple(event.included_clients)
        return Share(event.member_index, event.member, event.share_cid, included,
                     None if agreed is None else included == agreed, event.tx_hash, event.block_number,
                     self.gas_used(event.tx_hash))

    def _votes(self, events: Sequence[ModelProposed], result: str | None) -> list[Vote]:
        cids = [e.model_cid for e in events]
        leading = result or (max(set(cids), key=cids.count) if cids else None)
        unanimous = result is None and len(set(cids)) <= 1
        return [Vote(e.member, cid, None if unanimous and result is None else cid == leading, e.tx_hash,
                     e.block_number, self.gas_used(e.tx_hash)) for e, cid in zip(events, cids)]

    def _exclusions(self, record: RoundRecord, submissions: Sequence[Submission], shares: Sequence[Share],
                    votes: Sequence[Vote]) -> list[Exclusion]:
        found = [Exclusion(s.client, "client", f"submission {s.index} is not in the agreed client set", "chain")
                 for s in submissions if s.included is False]
        found += [Exclusion(s.member, "member", f"aggregate share over clients {list(s.included_clients)}, "
                            "not the agreed set", "chain") for s in shares if s.matches_agreed_set is False]
        found += [Exclusion(v.member, "member", f"voted for {v.model_cid}, not the finalized model", "chain")
                  for v in votes if v.matches is False]
        recorded = [_recorded_exclusion(e, e.source) for e in record.exclusions]
        unique = {(e.party, e.kind, e.reason): e for e in recorded}
        return found + list(unique.values())

    def _with_recorded_exclusions(self, record: RoundRecord) -> RoundRecord:
        """The round with what the run's members recorded (``nodes/*/exclusions.jsonl``, :mod:`agents.records`)."""
        nodes = RunLayout(self.run_dir).nodes_dir if self.run_dir else None
        if nodes is None or not nodes.is_dir():
            return record
        for path in sorted(nodes.glob(f"*/{EXCLUSIONS_FILE}")):
            record = apply_exclusions(record, read_exclusions(path, round_=record.round),
                                      source=f"{path.parent.name}/{path.name}")
        return record

    # -------------------------------------------------------------------------- chain

    def latest_blocks(self, count: int = 20) -> list[BlockSummary]:
        head, _ = self.head()
        return [self.block(n) for n in range(head, max(-1, head - count), -1)]

    def block(self, number_or_hash: int | str) -> BlockSummary | None:
        block = self.chain.block(number_or_hash, transactions=True)
        if block is None:
            return None
        txs = tuple((tx.hash, tx.sender, self.describe_tx(tx)) for tx in block.transactions)
        return BlockSummary(block.number, block.hash, block.timestamp, block.gas_used, txs)

    def describe_tx(self, tx: Transaction) -> str:
        """One line: the contract function called, a deployment, or a plain transfer."""
        return self.describe_call(tx.to, tx.input)

    def describe_call(self, to: str | None, data: bytes) -> str:
        """One line for ``data`` sent to ``to``: the contract function called, a deployment, or a
        plain transfer."""
        if to is None:
            return "contract creation"
        if checksum_address(to) != self.contract.address:
            return f"to {to}"
        return self.contract.decode_call(data).describe()

    def decoded_call(self, tx_hash: str) -> tuple[str | None, int | None]:
        """``(function name, its round argument)`` of a call to the contract; Nones otherwise."""
        tx = self.chain.transaction(tx_hash)
        if tx is None or tx.to != self.contract.address:
            return None, None
        call = self.contract.decode_call(tx.input)
        return (None, None) if call.args is None else (call.function, call.args.get("round"))

    def transaction(self, tx_hash: str) -> TxDetail | None:
        tx = self.chain.transaction(tx_hash)
        if tx is None:
            return None
        receipt = self.receipt(tx_hash) if tx.block_number is not None else None
        function, arguments, round_, problem = None, [], None, None
        ours = tx.to == self.contract.address
        if ours:
            call = self.contract.decode_call(tx.input)
            if call.args is None:
                function, problem = "undecodable call", call.problem
            else:
                function, arguments, round_ = call.function, render_arguments(call.args), call.args.get("round")
        elif tx.to is None:
            function = "contract creation"
        events = []
        other = 0
        if receipt is not None:
            decoded = self.contract.events(receipt)
            events = [(e.name, render_arguments(event_arguments(e)), e.log_index) for e in decoded]
            other = len(receipt.logs) - len(decoded)
            round_ = round_ or next((e.round for e in decoded if isinstance(e, RoundEvent)), None)
        revert = None
        if ours and receipt is not None and receipt.status == 0:
            explained = self.contract.explain_revert(tx)
            revert = str(explained).removeprefix("contract reverted: ") if explained is not None else None
        return TxDetail(
            hash=tx.hash, block=tx.block_number, from_=tx.sender, to=tx.to,
            value=tx.value, nonce=tx.nonce, status=receipt.status if receipt else None,
            gas_used=receipt.gas_used if receipt else None, gas_limit=tx.gas,
            effective_gas_price=receipt.effective_gas_price if receipt else None,
            function=function, arguments=arguments, events=events, other_logs=other,
            created=receipt.contract_address if receipt else None, round=round_, revert=revert,
            input_data=_hex(tx.input), call_problem=problem,
        )

    def roles(self, address: str) -> list[str]:
        """What ``address`` is in this federation (several roles are possible)."""
        config = self.deployment.config
        roles = []
        if address == self.contract.address:
            roles.append("the round contract")
        if address == self.operator():
            roles.append("operator (deployer: starts training, reopens rounds)")
        for j, member in enumerate(config.committee, start=1):
            if member.address == address:
                roles.append(f"committee member {j} of {len(config.committee)} (Shamir point x = {j})")
        if address in config.clients:
            roles.append(f"allowlisted client {config.clients.index(address) + 1} of {len(config.clients)}")
        return roles

    def address(self, address: str, *, limit: int = 50) -> AddressDetail:
        address = checksum_address(address)
        balance = self.chain.balance(address)
        nonce = self.chain.nonce(address)
        code = self.chain.code(address)
        transactions, scanned = self._address_transactions(address, limit)
        return AddressDetail(address, self.roles(address), balance, nonce, len(code) > 0, transactions, scanned)

    def _address_transactions(self, address: str, limit: int) -> tuple[list[tuple[str, int, str]], str]:
        """From Otterscan's index when the node has it (anvil does), else a scan of recent blocks."""
        indexed = self.chain.search_transactions_before(address, limit)
        if indexed is not None:
            return [(tx.hash, tx.block_number, self.describe_tx(tx)) for tx in indexed], \
                "the node's ots_searchTransactionsBefore index"
        head, _ = self.head()
        first = max(0, head - ADDRESS_SCAN_BLOCKS + 1)
        found: list[tuple[str, int, str]] = []
        for number in range(head, first - 1, -1):
            block = self.chain.block(number, transactions=True)
            for tx in block.transactions if block is not None else ():
                if address in (tx.sender, tx.to):
                    found.append((tx.hash, number, self.describe_tx(tx)))
            if len(found) >= limit:
                break
        return found[:limit], f"a scan of blocks {first}..{head}"

    def model_cids(self) -> set[str]:
        """The models of this federation at the confirmed head: every model a round trained from
        (RoundOpened), every finalized one (RoundFinalized, TrainingCompleted) and the contract's
        latestModel. Nothing else (a vote for a model that did not win, a manifest, a share) is one."""
        confirmed = self.confirmed_head()
        found = {e.model_cid for e in self._events_until(confirmed)
                 if isinstance(e, (RoundOpened, RoundFinalized, TrainingCompleted)) and e.model_cid}
        if confirmed >= self.deployment.deploy_block:
            latest = self._latest_model_at(confirmed)[1]
            if latest:
                found.add(latest)
        return found

    def cid_uses(self, cid: str) -> list[CidUse]:
        """Every event that names ``cid``: model, manifest, aggregate share, vote or result."""
        uses = []
        for event in self.events():
            named = _cid_use(event)
            if named is not None and named[1] == cid:
                kind, _, party = named
                uses.append(CidUse(kind, event.round_number, party, event.tx_hash, event.block_number))
        return uses


def _cid_use(event: ChainEvent) -> tuple[str, str, str | None] | None:
    """``(what the CID is, the CID, who posted it)`` of an event that names a CID; None otherwise."""
    if isinstance(event, RoundOpened):
        return "model the round trains from", event.model_cid, None
    if isinstance(event, UpdateSubmitted):
        return "client manifest", event.manifest_cid, event.client
    if isinstance(event, AggregateShareSubmitted):
        return "aggregate share", event.share_cid, event.member
    if isinstance(event, ModelProposed):
        return "model vote", event.model_cid, event.member
    if isinstance(event, RoundFinalized):
        return "finalized model", event.model_cid, None
    if isinstance(event, TrainingCompleted):
        return "final model", event.model_cid, None
    return None

