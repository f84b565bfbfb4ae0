"""The round contract's events, decoded once: one frozen dataclass per Solidity event.

This module is the one place that knows the events' Solidity argument names. Everything
else reads typed fields: names in snake_case, a ``(codec, digest)`` pair as one CID string,
a client bitmap as a :class:`ClientSet`, a state as :class:`RoundState`. Renaming an event
argument in the contract changes :func:`decode_event` and nothing outside ``fedtss/chain``.

Handlers are keyed by event class (``{CollectionClosed: on_collection_closed}``), and the
classes' ``name`` is the Solidity event name, which log lines and the explorer show.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from fedtss.cid import cid_from_parts, cid_to_parts
from fedtss.errors import FedTSSError

__all__ = [
    "EVENT_TYPES",
    "AggregateShareSubmitted",
    "ChainEvent",
    "ChecksSubmitted",
    "ClientSet",
    "ClientsAdded",
    "CollectionClosed",
    "ComplaintsSubmitted",
    "ModelProposed",
    "RoundEvent",
    "RoundFailed",
    "RoundFinalized",
    "RoundOpened",
    "RoundState",
    "ThresholdReached",
    "TrainingCompleted",
    "TrainingStarted",
    "UpdateSubmitted",
    "cid_or_none",
    "decode_event",
    "event_arguments",
    "events_of",
]


class RoundState(IntEnum):
    """``IFedTSSRounds.RoundState``; ``Unopened`` is the contract's ``None`` (a Python keyword)."""

    Unopened = 0
    Collecting = 1
    Aggregating = 2
    Reconstructing = 3
    Finalized = 4
    Failed = 5

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)

    @classmethod
    def from_bitmap(cls, bitmap: bytes | int) -> tuple[RoundState, ...]:
        """The states set in an ``expectedStates`` bitmap (bit ``s`` for state ``s``)."""
        value = int.from_bytes(bitmap, "big") if isinstance(bitmap, bytes) else bitmap
        return tuple(s for s in cls if value >> s & 1)


#: Bits in one word of a client set on chain.
WORD_BITS = 256


@dataclass(frozen=True, order=True)
class ClientSet:
    """A set of a round's clients by submission index: the contract's ``includedClients``.

    ``bitmap`` has bit i set for index i, as one (unbounded) int. On chain the same bits travel as
    256-bit words, least significant first, in as few words as hold the highest index
    (:meth:`words`, :meth:`from_words`): one set has one encoding, which the contract counts
    shares by. Equal only to another ClientSet (never to a bare int), so a set compared with a
    bitmap by mistake is always unequal, and tests catch it.
    """

    bitmap: int

    def __post_init__(self) -> None:
        if not isinstance(self.bitmap, int) or isinstance(self.bitmap, bool) or self.bitmap < 0:
            raise ValueError(f"a client set is a non-negative int bitmap, got {self.bitmap!r}")

    @classmethod
    def of(cls, indices: Iterable[int]) -> ClientSet:
        """The set of the given 0-based submission indices."""
        bitmap = 0
        for index in indices:
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise ValueError(f"client indices are 0-based submission indices, got {index}")
            bitmap |= 1 << index
        return cls(bitmap)

    @classmethod
    def from_words(cls, words: Iterable[int]) -> ClientSet:
        """The set the contract encodes as ``words`` (bit i of word w: index 256 w + i)."""
        bitmap = 0
        for position, word in enumerate(words):
            if not 0 <= word < 1 << WORD_BITS:
                raise ValueError(f"a client-set word is a uint256, got {word!r}")
            bitmap |= int(word) << (WORD_BITS * position)
        return cls(bitmap)

    def words(self) -> list[int]:
        """The contract's encoding: 256-bit words, least significant first, none after the last
        non-zero one (an empty set is no words: the contract refuses it as a share's set)."""
        count = -(-self.bitmap.bit_length() // WORD_BITS)
        mask = (1 << WORD_BITS) - 1
        return [self.bitmap >> (WORD_BITS * position) & mask for position in range(count)]

    def __contains__(self, index: object) -> bool:
        return (isinstance(index, int) and not isinstance(index, bool) and index >= 0
                and bool(self.bitmap >> index & 1))

    def __iter__(self) -> Iterator[int]:
        """The indices, ascending."""
        return (i for i in range(self.bitmap.bit_length()) if self.bitmap >> i & 1)

    def __len__(self) -> int:
        return self.bitmap.bit_count()

    def __str__(self) -> str:
        return "{" + ",".join(map(str, self)) + "}"


@dataclass(frozen=True, kw_only=True)
class ChainEvent:
    """One contract event, with where it happened (for idempotent handling and the explorer)."""

    block_number: int
    tx_hash: str
    log_index: int

    @property
    def name(self) -> str:
        """The Solidity event name (the class name)."""
        return type(self).__name__

    @property
    def round_number(self) -> int | None:
        """The round this event belongs to (None for the training-wide events)."""
        return None


@dataclass(frozen=True, kw_only=True)
class RoundEvent(ChainEvent):
    """An event of one round (its first indexed Solidity argument is ``round``)."""

    round: int

    @property
    def round_number(self) -> int | None:
        return self.round


@dataclass(frozen=True, kw_only=True)
class TrainingStarted(ChainEvent):
    """Training started: ``rounds`` rounds will be finalized, from ``first_round`` on."""

    first_round: int
    rounds: int

    @property
    def round_number(self) -> int | None:
        return self.first_round


@dataclass(frozen=True, kw_only=True)
class ClientsAdded(ChainEvent):
    """The operator added ``added`` clients to the allowlist, which now holds ``allowlisted``."""

    added: int
    allowlisted: int


@dataclass(frozen=True, kw_only=True)
class RoundOpened(RoundEvent):
    """A round opened for updates, training from ``model_cid``."""

    model_cid: str
    collection_deadline: int


@dataclass(frozen=True, kw_only=True)
class UpdateSubmitted(RoundEvent):
    """A client posted its manifest; ``index`` is its bit in the round's client sets."""

    client: str
    index: int
    manifest_cid: str


@dataclass(frozen=True, kw_only=True)
class CollectionClosed(RoundEvent):
    """Collection closed with ``clients`` updates (indices ``0..clients-1``)."""

    clients: int
    aggregation_deadline: int


@dataclass(frozen=True, kw_only=True)
class AggregateShareSubmitted(RoundEvent):
    """A member (1-based ``member_index``) posted its aggregate share over ``included_clients``."""

    member: str
    member_index: int
    share_cid: str
    included_clients: ClientSet


@dataclass(frozen=True, kw_only=True)
class ChecksSubmitted(RoundEvent):
    """A member (1-based ``member_index``) posted its share checks: 24 bytes per client of the
    round, client i's projection, the member's share of its sample count and its norm value at
    ``checks[24 * i : 24 * i + 24]`` (:func:`fedtss.validation.decode_checks`)."""

    member: str
    member_index: int
    checks: bytes


@dataclass(frozen=True, kw_only=True)
class ComplaintsSubmitted(RoundEvent):
    """A member complained about the clients ``client_indices`` (submission indices), showing for
    each what it got (``evidence[i]`` goes with ``client_indices[i]``): the 32-byte AES key of its
    sealed share from that client, or, for a share that did not open, its 96-byte proven X25519
    secret with the share's ephemeral key (:mod:`fedtss.decryption_proof`). The evidence is
    public on chain, but opens one blob each: keep it out of log lines."""

    member: str
    member_index: int
    client_indices: tuple[int, ...]
    evidence: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class ThresholdReached(RoundEvent):
    """t shares over ``included_clients`` are in: that set is now the round's only one."""

    included_clients: ClientSet
    proposal_deadline: int


@dataclass(frozen=True, kw_only=True)
class ModelProposed(RoundEvent):
    """A member voted for ``model_cid``."""

    member: str
    model_cid: str


@dataclass(frozen=True, kw_only=True)
class RoundFinalized(RoundEvent):
    """t members voted for ``model_cid``: it is the round's result."""

    model_cid: str


@dataclass(frozen=True, kw_only=True)
class TrainingCompleted(ChainEvent):
    """The requested rounds are finalized; ``model_cid`` is the final model."""

    last_round: int
    model_cid: str

    @property
    def round_number(self) -> int | None:
        return self.last_round


@dataclass(frozen=True, kw_only=True)
class RoundFailed(RoundEvent):
    """The round missed a deadline while in ``state_at_failure``."""

    state_at_failure: RoundState


#: A Solidity argument (or a codec and digest pair, one CID) and the typed field it becomes.
_Argument = tuple[str | tuple[str, str], str]
_CID = ("codec", "digest")

#: Per Solidity event: its class and its arguments in ABI order. The one table that knows the
#: Solidity names; :func:`decode_event` and :func:`event_arguments` both read it.
_LAYOUTS: Mapping[str, tuple[type[ChainEvent], tuple[_Argument, ...]]] = {
    "TrainingStarted": (TrainingStarted, (("firstRound", "first_round"), ("rounds", "rounds"))),
    "ClientsAdded": (ClientsAdded, (("added", "added"), ("allowlisted", "allowlisted"))),
    "RoundOpened": (RoundOpened, (("round", "round"), (("modelCodec", "modelDigest"), "model_cid"),
                                  ("collectionDeadline", "collection_deadline"))),
    "UpdateSubmitted": (UpdateSubmitted, (("round", "round"), ("client", "client"), ("index", "index"),
                                          (_CID, "manifest_cid"))),
    "CollectionClosed": (CollectionClosed, (("round", "round"), ("clients", "clients"),
                                            ("aggregationDeadline", "aggregation_deadline"))),
    "AggregateShareSubmitted": (AggregateShareSubmitted, (("round", "round"), ("member", "member"),
                                                          ("memberIndex", "member_index"), (_CID, "share_cid"),
                                                          ("includedClients", "included_clients"))),
    "ChecksSubmitted": (ChecksSubmitted, (("round", "round"), ("member", "member"), ("memberIndex", "member_index"),
                                          ("checks", "checks"))),
    "ComplaintsSubmitted": (ComplaintsSubmitted, (("round", "round"), ("member", "member"),
                                                  ("memberIndex", "member_index"),
                                                  ("clientIndices", "client_indices"), ("evidence", "evidence"))),
    "ThresholdReached": (ThresholdReached, (("round", "round"), ("includedClients", "included_clients"),
                                            ("proposalDeadline", "proposal_deadline"))),
    "ModelProposed": (ModelProposed, (("round", "round"), ("member", "member"), (_CID, "model_cid"))),
    "RoundFinalized": (RoundFinalized, (("round", "round"), (_CID, "model_cid"))),
    "TrainingCompleted": (TrainingCompleted, (("lastRound", "last_round"), (_CID, "model_cid"))),
    "RoundFailed": (RoundFailed, (("round", "round"), ("stateAtFailure", "state_at_failure"))),
}

#: Every event class, by Solidity name.
EVENT_TYPES: Mapping[str, type[ChainEvent]] = {name: cls for name, (cls, _) in _LAYOUTS.items()}

#: Checked at import: the class name is the Solidity name (``event.name`` relies on it).
assert all(cls.__name__ == name for name, cls in EVENT_TYPES.items())


def _typed(field_name: str, value: Any) -> Any:
    """An ABI-decoded value as the typed field holds it."""
    if field_name == "included_clients":
        return ClientSet.from_words(value)
    if field_name == "state_at_failure":
        return RoundState(value)
    if field_name == "checks":
        return bytes(value)
    if field_name == "client_indices":
        return tuple(int(index) for index in value)
    if field_name == "evidence":
        return tuple(bytes(piece) for piece in value)
    return value


def _solidity(value: Any) -> Any:
    """A typed field's value as the contract emitted it."""
    if isinstance(value, ClientSet):
        return value.words()
    return list(value) if isinstance(value, tuple) else value


def decode_event(name: str, args: Mapping[str, Any], *, block_number: int, tx_hash: str,
                 log_index: int) -> ChainEvent:
    """The typed event for Solidity event ``name`` with ABI-decoded ``args``.

    The contract only accepts valid CIDs, so an event's CID parts always join; a name this
    module does not know is a contract this code was not written for (KeyError).
    """
    cls, layout = _LAYOUTS[name]
    fields = {field_name: cid_from_parts(int(args[source[0]]), bytes(args[source[1]])) if isinstance(source, tuple)
              else _typed(field_name, args[source]) for source, field_name in layout}
    return cls(block_number=block_number, tx_hash=tx_hash, log_index=log_index, **fields)


def event_arguments(event: ChainEvent) -> dict[str, Any]:
    """The event's arguments as the contract emitted them, for showing an event as it is on chain.

    Solidity names in the event's order, a CID as its ``codec`` and ``digest`` (int, 32 bytes), a
    client set as its 256-bit words (list of int), a state as :class:`RoundState`: ``decode_event(event.name,
    event_arguments(event), ...)`` gives the event back.
    """
    arguments: dict[str, Any] = {}
    for source, field_name in _LAYOUTS[event.name][1]:
        value = getattr(event, field_name)
        if isinstance(source, tuple):
            arguments.update(zip(source, cid_to_parts(value), strict=True))
        else:
            arguments[source] = _solidity(value)
    return arguments


def cid_or_none(codec: int, digest: bytes) -> str | None:
    """The CID a ``(codec, digest)`` pair from decoded calldata names, or None if it names none.

    Calldata is untrusted (anyone can send any bytes to the contract, and a reverted call is
    still mined), so a pair that is no valid CID is a value to show as it is, not an error.
    """
    try:
        return cid_from_parts(codec, bytes(digest))
    except FedTSSError:
        return None


_E = TypeVar("_E", bound=ChainEvent)


def events_of(events: Iterable[ChainEvent], kind: type[_E]) -> list[_E]:
    """The events of one class, in the order given."""
    return [event for event in events if isinstance(event, kind)]

