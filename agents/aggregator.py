"""The committee member agent: add up its shares, then reconstruct the new model and vote.

    python -m agents.aggregator --config runs/demo/nodes/member-2.toml

Member j, in one round:

1. ``CollectionClosed`` -> :func:`on_collection_closed` decides (skip if it already posted a
   share this round, or the round moved on); :func:`aggregate_and_submit` takes the
   submitters in order (index i = bit i), and for each one fetches and checks the manifest,
   fetches and opens its sealed share j (:func:`open_client_share`), several clients at a
   time and within half the time left to the aggregation deadline. Any failure, even one no
   check foresaw, excludes that client only: logged with its address and the reason class
   and recorded in ``state_dir/exclusions.jsonl``. :func:`aggregate_shares` sums the rest
   mod p in submission order; the member keeps the sum in ``state_dir`` and sends
   ``submitAggregateShare(round, CID, includedClients)`` (the set's 256-bit words) with its CID only, unless
   ThresholdReached already fixed a different client set (then it posts nothing).
2. ``ThresholdReached(round, set)`` -> :func:`on_threshold_reached`;
   :func:`start_reconstruction` publishes its own share if it is over ``set``
   (:func:`publish_own_share`), starts fetching the shares posted so far and remembers the
   round as a :class:`PendingVote`. Nothing waits inside it: each later
   ``AggregateShareSubmitted`` of the round starts one more fetch
   (:func:`on_aggregate_share_submitted`), and at each clock :class:`~agents.runtime.Tick`
   :func:`on_tick` asks :func:`is_worth_waiting` (every member's share over ``set``, or
   ``share_wait_seconds``; longer while only t are there, and again for one more when the
   shares in hand are inconsistent). When waiting is over, :func:`reconstruct_and_propose`
   runs :func:`reconstruct_model` (pure): reconstruction with error correction (naming
   wrong members), dequantization, the mean update. Every honest member gets the same
   model bytes, stores them and votes ``proposeModel(round, CID)``, unless t others voted
   first. A member restarted while it waited starts waiting again (:func:`resume_events`).

With client checks (``checkPeriod`` > 0, :mod:`agents.client_checks`), step 1 stops before
the post: :func:`begin_checks` also takes each share's projection and sample-count share as it
opens, posts them (``submitChecks``) and waits in the round; at each Tick, and as each member's
checks or complaints arrive, :func:`on_tick` returns :class:`DecideClients` once the checks are
in, and :func:`decide_clients` complains if this member was cheated, takes the committee's
verdict (excluding clients and naming members by name) and posts over the clients kept. If
ThresholdReached comes first, the member posts over that set at once and still takes the
verdict, to name whom it names.

Which client set wins. Members may disagree about a client whose share opened for some and
not for others; each posts the set it could include. The contract emits ``ThresholdReached``
for the *first* set that t members posted and refuses shares over any other set from then
on; every honest member reconstructs from shares over exactly that set, so the committee
cannot be split: the chain's order decides.

Why a share is published only once its set is fixed. The sum over the fixed set is public
once reconstructed, so anyone can evaluate its sharing polynomial at member j's point. Had
member j published a share over a set that differs in client c, the difference would be j's
share of c's update, and t - 1 colluding members holding their own shares of c would recover
c's update. Kept in j's state folder, with only its hash (the CID) on chain, it never is.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from threading import Event, Lock
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from agents.client_checks import (
    PendingChecks,
    ShareProjections,
    WrapCheck,
    checks_ready,
    client_claims,
    open_client_proof,
    sealed_proof_bytes,
    read_client_manifest,
    round_challenge_of,
    start_checks,
    step_checks,
)
from agents.config import AggregatorSettings, FederationSettings, check_ring_capacity
from agents.client import fetch_model
from agents.learning import apply_mean_update
from agents.masked_aggregation import (
    MaskedOpened,
    masked_sum_over,
    open_masked_client,
    read_masked_vector,
    reconstruct_masked_sum,
    reveal_length,
    reveal_seed_shares,
)
from agents.records import ExclusionRecord, append_exclusion
from agents.runtime import (
    NOTHING_TO_DECIDE,
    TICK_SECONDS,
    Handler,
    Node,
    Outcome,
    Skip,
    StepClock,
    Tick,
    check_round_capacity,
    format_fields,
    is_transient,
    log,
    main,
)
from fedtss import field as gf
from fedtss.chain import (
    AggregateShareSubmitted,
    ChainEvent,
    ChecksSubmitted,
    ClientSet,
    CollectionClosed,
    ComplaintsSubmitted,
    RoundOpened,
    RoundState,
    ThresholdReached,
    UpdateSubmitted,
    transaction_hash,
)
from fedtss.chain.keys import SealingKey, load_sealing_key
from fedtss._files import write_atomically
from fedtss.cid import compute_cid
from fedtss.errors import (
    BlobTooLarge,
    CIDMismatch,
    ConfigError,
    ContractRevert,
    FedTSSError,
    FormatError,
    InconsistentShares,
    ShareError,
    StorageError,
)
from fedtss.formats import (
    MANIFEST_MAX_BYTES,
    Manifest,
    RoundTerms,
    VectorKind,
    check_manifest,
    decode_field_vector,
    encode_field_vector,
    encode_model,
    field_vector_bytes,
    parse_manifest,
    shared_vector_length,
)
from fedtss.quantize import QuantizationConfig, dequantize_metrics, dequantize_sum
from fedtss.sealing import OVERHEAD, ShareContext, open_share_with_key, share_key
from fedtss.shamir import Reconstruction, add_weighted_share, reconstruct_checked
from fedtss.storage import ContentStore
from fedtss.validation import CheckedLayout, RoundVerdict, challenge_vector, check_tail_length, committee_decides_norms
from fedtss.wraparound import WrapBounds, proof_length
from fedtss.wraparound import warm_up as warm_up_wrap_around_check

__all__ = [
    "HANDLERS",
    "AggregateAndSubmit",
    "AggregateShareFetcher",
    "AggregatorAgent",
    "CheckingRound",
    "DecideClients",
    "Exclusion",
    "MemberView",
    "FetchShare",
    "PendingVote",
    "ReconstructAndPropose",
    "ReconstructedModel",
    "RoundTerms",
    "StartReconstruction",
    "Submission",
    "WaitingRound",
    "aggregate_and_submit",
    "aggregate_shares",
    "begin_checks",
    "build_aggregator_agent",
    "decide_clients",
    "check_manifest",
    "collect_client_shares",
    "sum_client_shares",
    "ShareSum",
    "share_weight",
    "aggregate_over",
    "compute_fetch_timeout",
    "field_vector_bytes",
    "is_unpublished",
    "is_worth_waiting",
    "keep_unpublished_share",
    "on_aggregate_share_submitted",
    "on_collection_closed",
    "on_threshold_reached",
    "on_tick",
    "open_client_share",
    "open_round_shares",
    "publish_own_share",
    "reconstruct_and_propose",
    "reconstruct_model",
    "resume_events",
    "shares_over",
    "start_reconstruction",
    "waiting_rounds",
]

#: Errors that exclude one client (bad bytes, missing blob, unopenable share), never a crash.
CLIENT_FAULTS = (FormatError, StorageError, ShareError)
#: At most this many blobs a member fetches at once (one per client up to it); each is one
#: thread waiting on the store.
MAX_FETCH_WORKERS = 64
#: Aggregate shares a member fetches at once while it reconstructs.
SHARE_FETCH_WORKERS = 8
#: How long a member's look at a round it waits in lets the share fetches in flight land.
SHARE_FETCH_GRACE_SECONDS = 0.05
#: Share of the time left to the aggregation deadline a member spends fetching clients' blobs;
#: the rest is for summing, storing the aggregate share and getting its transaction mined.
FETCH_SHARE_OF_DEADLINE = 0.5
#: Where, in ``state_dir``, a member keeps its aggregate share until the chain fixes its set.
UNPUBLISHED_SHARES_DIR = "aggregate-shares"


# ------------------------------------------------------------------------ decide


@dataclass(frozen=True)
class MemberView:
    """The chain's answers the member decides on, read just before deciding."""

    member_index: int
    last_share_round: int
    last_vote_round: int
    state: RoundState
    committee_deadline: int


@dataclass(frozen=True)
class AggregateAndSubmit:
    round: int


@dataclass(frozen=True)
class StartReconstruction:
    """Publish this member's share and start collecting the others' over ``included_clients``."""

    round: int
    included_clients: ClientSet
    proposal_deadline: int


@dataclass(frozen=True)
class FetchShare:
    """Fetch the aggregate share one member posted in a round this member waits in."""

    event: AggregateShareSubmitted


@dataclass(frozen=True)
class ReconstructAndPropose:
    """Reconstruct the round's model from the shares in hand and vote for it."""

    round: int


@dataclass(frozen=True)
class DecideClients:
    """Take the committee's verdict on a round's clients (it may still wait for complaints)."""

    round: int


@dataclass(frozen=True)
class CheckingRound:
    """A round whose clients this member checks, and whether :func:`decide_clients` can move on."""

    round: int
    ready: bool


@dataclass(frozen=True)
class WaitingRound:
    """What a member waiting in one round knows (see :func:`is_worth_waiting` for each count)."""

    round: int
    settled: int
    over_set: int
    members: int
    wanted: int
    waited: float
    share_wait: float
    remaining: float


def on_collection_closed(view: MemberView, event: CollectionClosed, now: int) -> list[AggregateAndSubmit | Skip]:
    round_ = event.round
    if view.member_index == 0:
        return [Skip(round_, "not a committee member")]
    if view.last_share_round == round_:
        return [Skip(round_, "already posted an aggregate share in this round")]
    if view.state not in (RoundState.Aggregating, RoundState.Reconstructing):
        return [Skip(round_, f"round is {view.state}, not Aggregating")]
    if now > view.committee_deadline:
        return [Skip(round_, "aggregation deadline passed")]
    return [AggregateAndSubmit(round_)]


def on_threshold_reached(view: MemberView, event: ThresholdReached, now: int) -> list[StartReconstruction | Skip]:
    round_ = event.round
    if view.member_index == 0:
        return [Skip(round_, "not a committee member")]
    if view.last_vote_round == round_:
        return [Skip(round_, "already voted in this round")]
    if view.state != RoundState.Reconstructing:
        return [Skip(round_, f"round is {view.state}, not Reconstructing")]
    if now > event.proposal_deadline:
        return [Skip(round_, "proposal deadline passed")]
    return [StartReconstruction(round_, event.included_clients, event.proposal_deadline)]


def on_aggregate_share_submitted(waiting_in: frozenset[int], event: AggregateShareSubmitted,
                                 now: int) -> list[FetchShare]:
    """A share posted in a round this member waits in is fetched; before ThresholdReached the
    member reads the round's shares itself (:func:`start_reconstruction`)."""
    return [FetchShare(event)] if event.round in waiting_in else []


def on_tick(waiting: Mapping[int | tuple[str, int], WaitingRound | CheckingRound],
            event: Tick | ChecksSubmitted | ComplaintsSubmitted,
            now: int) -> list[ReconstructAndPropose | DecideClients]:
    """Take the verdict in every round whose checks are settled enough; reconstruct in every round
    where waiting longer is not worth it."""
    actions: list[ReconstructAndPropose | DecideClients] = []
    for w in waiting.values():
        if isinstance(w, CheckingRound):
            if w.ready:
                actions.append(DecideClients(w.round))
        elif not is_worth_waiting(settled=w.settled, over_set=w.over_set, members=w.members, wanted=w.wanted,
                                  waited=w.waited, share_wait=w.share_wait, remaining=w.remaining):
            actions.append(ReconstructAndPropose(w.round))
    return actions


HANDLERS: Mapping[type, Handler] = {
    CollectionClosed: on_collection_closed,
    ThresholdReached: on_threshold_reached,
    AggregateShareSubmitted: on_aggregate_share_submitted,
    Tick: on_tick,
    # A member's checks or complaints may be what a checking round waits for: look at once, not
    # at the next Tick (up to TICK_SECONDS later, on the round's path when they are the last).
    ChecksSubmitted: on_tick,
    ComplaintsSubmitted: on_tick,
}


# ---------------------------------------------------------- step 1: aggregate shares


@dataclass(frozen=True)
class Submission:
    """One ``UpdateSubmitted``: the client's bit ``index`` and where its manifest is."""

    index: int
    client: str
    manifest_cid: str


@dataclass(frozen=True)
class Exclusion:
    """A client left out of this member's aggregate, and why (a class name, never bytes).

    ``error`` is kept for the log's traceback when no check foresaw it (``Unexpected…``).
    """

    submission: Submission
    reason: str
    error: BaseException | None = field(default=None, repr=False, compare=False)


def open_client_share(
    store: ContentStore, submission: Submission, terms: RoundTerms, *,
    member_index: int, private_key: bytes, max_blob_bytes: int, timeout: float | None = None,
    on_manifest: Callable[[int, Manifest], None] | None = None,
    on_proof: Callable[[int, Manifest, NDArray[np.uint64]], None] | None = None,
) -> NDArray[np.uint64]:
    """Fetch, check and open one client's share for this member; raises one of CLIENT_FAULTS.

    ``timeout`` bounds each fetch (manifest, sealed share, proof); None: the store's own.
    ``on_manifest`` is handed (submission index, manifest) once the manifest checks out. With
    ``on_proof`` (the checks), where the round has wrap-around proofs (``terms.proof_length``),
    this member's proof share is fetched and opened too (with the key of its sealed share) and
    handed to it: a proof that does not open or decode makes the share unusable, as a share that
    does not would. Without it (a set already fixed, or a share taken out again) no proof is read.
    """
    manifest = read_client_manifest(store, submission, terms, max_blob_bytes=max_blob_bytes, timeout=timeout)
    if on_manifest is not None:
        on_manifest(submission.index, manifest)
    plain_size = field_vector_bytes(terms.vector_length)
    sealed = store.get(manifest.share_cids[member_index - 1], max_bytes=plain_size + OVERHEAD, timeout=timeout)
    context = ShareContext(terms.chain_id, terms.contract, terms.round, submission.client, member_index)
    key = share_key(sealed, private_key, context)
    plaintext = open_share_with_key(sealed, key, context)
    share = decode_field_vector(plaintext, kind=VectorKind.SHARE, max_bytes=plain_size,
                                expected_length=terms.vector_length)
    if terms.proof_length is not None and on_proof is not None:
        sealed_proof = store.get(manifest.proof_cids[member_index - 1], max_bytes=sealed_proof_bytes(terms),
                                 timeout=timeout)
        on_proof(submission.index, manifest, open_client_proof(sealed_proof, key, context, terms))
    return share


def collect_client_shares(
    store: ContentStore, submissions: Sequence[Submission], terms: RoundTerms, *,
    member_index: int, private_key: bytes, max_blob_bytes: int,
    budget_seconds: float | None = None, workers: int = MAX_FETCH_WORKERS,
    opener: Callable[..., NDArray[np.uint64]] | None = None,
) -> tuple[dict[int, NDArray[np.uint64]], list[Exclusion]]:
    """Every submitter's opened share by bit index, and the clients excluded (with why).

    Clients are fetched up to ``workers`` at a time, so one slow or unprovidable blob costs
    its own client, not the others. With a ``budget_seconds``, each client gets its share of
    it (:func:`compute_fetch_timeout`), so clients posting CIDs nobody serves cannot use up
    the time of those after them, and a client not done when the budget is spent is excluded
    as ``FetchTimedOut`` (its fetch is abandoned, not awaited). Anything a client's bytes make
    go wrong excludes that client, even an exception no check foresaw: only our own store
    being unreachable (:func:`is_store_down`) is raised, to be retried. ``opener`` reads one
    client (default :func:`open_client_share`; the masked mode's opens its seed row).
    """
    shares: dict[int, NDArray[np.uint64]] = {}
    excluded = _open_each(store, submissions, terms, shares.__setitem__, member_index=member_index,
                          private_key=private_key, max_blob_bytes=max_blob_bytes, budget_seconds=budget_seconds,
                          workers=workers, opener=open_client_share if opener is None else opener)
    return shares, excluded


@dataclass
class ShareSum:
    """The Shamir mode's step 1 as it goes: the sum mod p of every share opened so far, each times
    its client's weight, and the clients in it. Adding each share as its fetch completes keeps a
    member's memory at O(L) (plus the fetches in flight), whatever the number of clients."""

    total: NDArray[np.uint64] = field(repr=False)
    clients: ClientSet = ClientSet(0)
    #: Each summed client's weight (:func:`share_weight`), to take its share out again with.
    weights: dict[int, int] = field(default_factory=dict)
    #: Clients in ``total`` that the committee's checks excluded (:mod:`agents.client_checks`):
    #: taken out again before the member posts, unless the chain fixed a set with them.
    withheld: ClientSet = ClientSet(0)

    @property
    def chosen(self) -> ClientSet:
        """The clients this member proposes to sum: every one it opened that the checks kept."""
        return ClientSet(self.clients.bitmap & ~self.withheld.bitmap)

    @classmethod
    def empty(cls, length: int) -> ShareSum:
        return cls(np.zeros(length, dtype=np.uint64))

    def add(self, index: int, share: NDArray[np.uint64], weight: int = 1, *,
            checks: ShareProjections | None = None) -> None:
        """Add ``weight`` times client ``index``'s share; with ``checks``, take the share's checks in
        the same pass. A share that cannot be added (or checked) raises and leaves the sum as it was."""
        if index in self.clients:
            raise ValueError(f"client {index} is already in the sum")
        if share.shape != self.total.shape:
            raise FormatError(f"a share of length {share.size} does not add to a sum of length {self.total.size}")
        if checks is None:
            add_weighted_share(self.total, share, weight)
        else:
            checks.take(index, share, add_to=self.total, weight=weight)
        self.weights[index] = weight
        self.clients = ClientSet(self.clients.bitmap | (1 << index))


def share_weight(manifest: Manifest) -> int:
    """What a member multiplies a client's share by: its manifest's sample count where the members
    weight updates (:mod:`fedtss.quantize`, "Weighted by the members"), else 1 (already weighted)."""
    return 1 if manifest.samples is None else manifest.samples


def sum_client_shares(
    store: ContentStore, submissions: Sequence[Submission], terms: RoundTerms, *,
    member_index: int, private_key: bytes, max_blob_bytes: int,
    budget_seconds: float | None = None, workers: int = MAX_FETCH_WORKERS,
) -> tuple[ShareSum, list[Exclusion]]:
    """As :func:`collect_client_shares`, but each opened share is added to a running sum as its
    fetch completes and then dropped: what a member keeps is O(L), not one share per client."""
    summed = ShareSum.empty(terms.vector_length)
    weights: dict[int, int] = {}  # set by the worker that opens the client, just before it hands the share in

    def note_weight(index: int, manifest: Manifest) -> None:
        weights[index] = share_weight(manifest)

    def take(index: int, share: NDArray[np.uint64]) -> None:
        summed.add(index, share, weights[index])

    excluded = _open_each(store, submissions, terms, take, member_index=member_index,
                          private_key=private_key, max_blob_bytes=max_blob_bytes, budget_seconds=budget_seconds,
                          workers=workers, opener=partial(open_client_share, on_manifest=note_weight))
    return summed, excluded


def _open_each(
    store: ContentStore, submissions: Sequence[Submission], terms: RoundTerms,
    take: Callable[[int, NDArray[np.uint64]], None], *, member_index: int, private_key: bytes,
    max_blob_bytes: int, budget_seconds: float | None, workers: int, opener: Callable[..., NDArray[np.uint64]],
) -> list[Exclusion]:
    """Open every submission up to ``workers`` at a time and hand each opened vector to ``take``
    (submission index, vector) in the worker that opened it, one at a time: no opened vector
    waits in a queue, so memory stays at ``workers`` openings in flight. Returns the exclusions.

    A fetch still running when the budget is spent is abandoned: whatever it opens later is
    not taken, and its client is excluded as ``FetchTimedOut``.
    """
    workers = max(1, min(workers, len(submissions)))
    timeout = None if budget_seconds is None else compute_fetch_timeout(budget_seconds, len(submissions), workers)
    lock, taken, closed = Lock(), set(), Event()

    def open_and_take(submission: Submission) -> None:
        vector = opener(store, submission, terms, member_index=member_index, private_key=private_key,
                        max_blob_bytes=max_blob_bytes, timeout=timeout)
        with lock:
            if not closed.is_set():
                take(submission.index, vector)
                taken.add(submission.index)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    try:
        futures = {pool.submit(open_and_take, submission): submission for submission in submissions}
        done, _ = wait(futures, timeout=budget_seconds)
    finally:
        with lock:
            closed.set()
        pool.shutdown(wait=False, cancel_futures=True)
    excluded = []
    for future, submission in futures.items():
        error = future.exception() if future in done else None
        if error is not None and is_store_down(error):
            raise error  # our own store is unreachable: not this client's fault
        if error is not None:
            excluded.append(Exclusion(submission, fault_name(error), error))
        elif submission.index not in taken:
            excluded.append(Exclusion(submission, "FetchTimedOut"))
    return sorted(excluded, key=lambda e: e.submission.index)


def compute_fetch_timeout(budget_seconds: float, clients: int, workers: int) -> float:
    """Seconds each of a client's two fetches may take, so that ``clients`` fetched ``workers``
    at a time all fit in the budget even if every one of them is a CID nobody serves."""
    batches = max(1, math.ceil(clients / max(1, workers)))
    return max(0.05, budget_seconds / batches / 2)


def is_store_down(error: BaseException) -> bool:
    """Whether ``error`` says our own store cannot be reached (retry later), not a bad blob."""
    return isinstance(error, StorageError) and is_transient(error)


def fault_name(error: BaseException) -> str:
    """The reason logged for an exclusion: the error's class, marked when no check foresaw it."""
    name = type(error).__name__
    return name if isinstance(error, CLIENT_FAULTS) else f"Unexpected{name}"


def aggregate_shares(shares: Mapping[int, NDArray[np.uint64]],
                     length: int) -> tuple[NDArray[np.uint64], ClientSet]:
    """Sum the shares mod p in submission order; return (aggregate share, the clients it sums)."""
    total = np.zeros(length, dtype=np.uint64)
    for index in sorted(shares):
        total = gf.add(total, shares[index])
    return total, ClientSet.of(shares)


# ------------------------------------------------------- step 2: reconstruct the model


@dataclass(frozen=True)
class ReconstructedModel:
    """The new global model, its canonical blob, and what the reconstruction rested on."""

    tensors: dict[str, NDArray[np.float32]] = field(repr=False)
    blob: bytes = field(repr=False)
    used_members: tuple[int, ...]
    excluded_members: tuple[int, ...]
    total_samples: int
    metrics: dict[str, float] = field(default_factory=dict)  # the federated evaluation, if any


def reconstruct_model(
    global_tensors: Mapping[str, NDArray[np.float32]],
    aggregate_shares: Mapping[int, NDArray[np.uint64]],
    *,
    threshold: int,
    quantization: QuantizationConfig,
    key: bytes,
    metric_names: Sequence[str] = (),
    check_tail: int = 0,
) -> ReconstructedModel:
    """Reconstruct the clients' summed update (naming wrong members) and apply its mean.

    ``aggregate_shares`` maps member index -> aggregate share over one client set; ``key``
    (32 fresh random bytes) seeds the error check. With ``metric_names`` (the deployment's), the
    last ``m`` elements are the clients' summed metrics: their sample-weighted means go into the
    new model's blob. ``check_tail``: the vectors end with that many coordinates of the checks
    (norm masks and the pad: sums of uniform values, dropped). Equal honest inputs give equal blobs.
    """
    result = reconstruct_checked(aggregate_shares, threshold=threshold, key=key)
    secret = result.secret[: result.secret.size - check_tail]
    return model_from_sum(global_tensors, secret, result, quantization=quantization, metric_names=metric_names)


def model_from_sum(global_tensors: Mapping[str, NDArray[np.float32]], secret: NDArray[np.uint64],
                   result: Reconstruction, *, quantization: QuantizationConfig,
                   metric_names: Sequence[str] = ()) -> ReconstructedModel:
    """Apply the mean of the clients' summed update (field encoding) to the model; both modes end here."""
    update_part = secret[: secret.size - len(metric_names)]
    mean, total_samples = dequantize_sum(update_part, quantization)
    tensors = apply_mean_update(global_tensors, mean)
    metrics = None
    if metric_names:
        values = dequantize_metrics(secret[update_part.size :], total_samples, quantization)
        metrics = dict(zip(metric_names, values, strict=True))
    return ReconstructedModel(tensors, encode_model(tensors, metrics=metrics), result.used_holders,
                              result.excluded_holders, total_samples, metrics or {})


# ---------------------------------------------------------------------- the edge


def round_model(agent: AggregatorAgent, round_: int) -> tuple[str, dict[str, NDArray[np.float32]]]:
    """The CID and tensors of the model round ``round_`` trains from (its RoundOpened)."""
    opened = agent.node.round_events(round_, RoundOpened)
    if not opened:
        raise FormatError(f"no RoundOpened event for round {round_}")
    cid = opened[-1].model_cid
    tensors = agent.models.get(cid)
    if tensors is None:  # a member reads the round's model up to three times (open, publish, reconstruct)
        tensors = fetch_model(agent.node, cid, agent.node.deployment.model_layout)
        for array in tensors.values():
            array.setflags(write=False)  # shared by every later read: nothing may change it in place
        agent.models = {**dict(list(agent.models.items())[-1:]), cid: tensors}  # this round's and the last
    return cid, tensors


def round_submissions(agent: AggregatorAgent, round_: int) -> list[Submission]:
    """The round's submitters in order (the ``submitters`` view), with their manifest CIDs."""
    by_index = {e.index: e for e in agent.node.round_events(round_, UpdateSubmitted)}
    submissions = []
    for index, client in enumerate(agent.node.contract.submitters(round_)):
        event = by_index.get(index)
        if event is None or event.client != client:
            raise FormatError(f"round {round_}: no UpdateSubmitted event for submitter {index} ({client})")
        submissions.append(Submission(index, client, event.manifest_cid))
    return submissions


def round_terms(agent: AggregatorAgent, round_: int, vector_length: int) -> RoundTerms:
    node = agent.node
    n, t, bits = len(node.contract.committee()), node.contract.threshold(), masked_bits(agent)
    terms = RoundTerms(
        chain_id=node.deployment.chain_id,
        contract=node.deployment.address,
        round=round_,
        n=n,
        t=t,
        vector_length=vector_length,
        quantization=agent.federation.quantization,
        modulus_bits=bits,
        # clients claim norm values in the Shamir mode with checks on and a committee that can check them
        norm_claims=bool(agent.check_period) and bits is None and committee_decides_norms(n, t),
        # and state their sample count for the members to weight by (with checks on, in the Shamir mode)
        samples=bool(agent.check_period) and bits is None,
    )
    if terms.norm_claims:  # with the norm claims comes the wrap-around proof
        layout = CheckedLayout.of(vector_length, metrics=len(node.deployment.model_metrics), threshold=t)
        bounds = WrapBounds.of(terms.quantization, update=layout.update, metrics=layout.metrics)
        terms = replace(terms, proof_length=proof_length(bounds, t))
    return terms


def masked_bits(agent: AggregatorAgent) -> int | None:
    """The ring's bits if the deployment aggregates in the masked mode, else None (Shamir mode)."""
    return agent.modulus_bits


def submission_positions(agent: AggregatorAgent, round_: int) -> dict[int, int]:
    """Submission index -> the client's position in the allowlist (the masked mode's numbering)."""
    position = {client.lower(): k for k, client in enumerate(agent.node.contract.clients())}
    return {index: position[client.lower()] for index, client in enumerate(agent.node.contract.submitters(round_))}


def round_aggregate(agent: AggregatorAgent, round_: int, chosen: Mapping[int, NDArray[np.uint64]],
                    length: int) -> tuple[NDArray[np.uint64], ClientSet]:
    """What this member posts over the clients ``chosen``: the sum of their shares (Shamir mode),
    or its shares of exactly the seeds to reveal for that set (masked mode)."""
    if masked_bits(agent) is None:
        return aggregate_shares(chosen, length)
    positions = submission_positions(agent, round_)
    rows = {positions[index]: row for index, row in chosen.items()}
    return reveal_seed_shares(rows, len(agent.node.contract.clients())), ClientSet.of(chosen)


def posted_vector_length(agent: AggregatorAgent, round_: int, included: ClientSet, shared_length: int) -> int:
    """Length of the members' posted vectors over ``included``: the shared vector's, or the reveal's."""
    if masked_bits(agent) is None:
        return shared_length
    positions = submission_positions(agent, round_)
    return reveal_length([positions[index] for index in included], len(agent.node.contract.clients()))


#: What step 1 opened: in the Shamir mode the running sum of the shares; in the masked mode each
#: client's seed row (5N elements) by submission index, and the running sum of the masked vectors.
Opened = ShareSum | MaskedOpened


def open_round_shares(agent: AggregatorAgent, round_: int, *, record: bool = True) -> tuple[Opened, int]:
    """What this member could open of every client (:data:`Opened`), and the vector length.

    Fetching stops at :data:`FETCH_SHARE_OF_DEADLINE` of the time left to the aggregation
    deadline, so a client posting a CID nobody serves cannot make the member miss it. The
    clients left out are logged and (with ``record``) written to ``exclusions.jsonl``.
    """
    node = agent.node
    _, tensors = round_model(agent, round_)
    terms = round_terms(agent, round_, round_vector_length(agent, tensors))
    submissions = round_submissions(agent, round_)
    opened: Opened
    if terms.modulus_bits is None:
        opened, excluded = sum_client_shares(node.store, submissions, terms, **_fetch_options(agent, round_))
    else:
        opened = MaskedOpened(terms.modulus_bits, terms.vector_length)
        excluded = _open_each(node.store, submissions, terms, opened.take, workers=MAX_FETCH_WORKERS,
                              opener=partial(open_masked_client, clients=len(node.contract.clients())),
                              **_fetch_options(agent, round_))
        agent.masked_step1 = {round_: opened}  # for step 2: one masked sum, of this round only
    log_exclusions(agent, round_, excluded, record=record)
    return opened, terms.vector_length


def log_exclusions(agent: AggregatorAgent, round_: int, excluded: Sequence[Exclusion], *, record: bool = True) -> None:
    """Log each excluded client with its address and reason; with ``record``, write it to ``exclusions.jsonl``."""
    for exclusion in excluded:
        unforeseen = exclusion.reason.startswith("Unexpected")
        log.log(logging.ERROR if unforeseen else logging.WARNING,
                format_fields(role=agent.role, address=agent.node.address, round=round_,
                              excluded_client=exclusion.submission.client, reason=exclusion.reason),
                exc_info=exclusion.error if unforeseen else None)
        if record:
            record_exclusion(agent, round_, client=exclusion.submission.client, reason=exclusion.reason)


def checks_tail(agent: AggregatorAgent) -> int:
    """Coordinates the checks append to a client's vector (t - 1 norm masks and the pad), 0 without checks."""
    return check_tail_length(agent.node.contract.threshold()) if agent.check_period else 0


def round_vector_length(agent: AggregatorAgent, tensors: Mapping[str, NDArray[np.float32]]) -> int:
    """The length of the vector clients share: update, metrics, and the checks' tail if they are on."""
    return shared_vector_length(tensors, len(agent.node.deployment.model_metrics)) + checks_tail(agent)


def _fetch_options(agent: AggregatorAgent, round_: int) -> dict[str, Any]:
    node = agent.node
    time_left = node.contract.round_info(round_).committee_deadline - node.chain_time()
    return dict(member_index=agent.member_index, private_key=agent.sealing_key.private_key,
                max_blob_bytes=node.max_blob_bytes, budget_seconds=max(1.0, time_left * FETCH_SHARE_OF_DEADLINE))


def aggregate_over(agent: AggregatorAgent, round_: int, opened: Opened, length: int,
                   fixed: ClientSet) -> tuple[NDArray[np.uint64], ClientSet] | None:
    """What this member posts: over every client it opened while no set is fixed (``fixed``
    empty), else over exactly ``fixed``; None if it lacks a client of ``fixed``."""
    if isinstance(opened, ShareSum):
        return shamir_sum_over(agent, round_, opened, fixed, length)
    chosen = shares_over(opened.rows, fixed)
    return None if chosen is None else round_aggregate(agent, round_, chosen, length)


def shamir_sum_over(agent: AggregatorAgent, round_: int, summed: ShareSum, fixed: ClientSet,
                    length: int) -> tuple[NDArray[np.uint64], ClientSet] | None:
    """The sum over ``fixed`` (when no set is fixed yet: the clients the checks kept) from the
    running sum over every client opened.

    When the fixed set leaves out clients this member summed (a client that split the
    committee, or a fetch that timed out elsewhere), their shares are opened again and
    subtracted: the member kept none of them. If one no longer opens, it posts nothing.
    """
    fixed = fixed or summed.chosen
    if fixed == summed.clients:
        return without_check_tail(agent, summed.total), summed.clients
    if any(index not in summed.clients for index in fixed):
        return None
    extra = [s for s in round_submissions(agent, round_) if s.index in summed.clients and s.index not in fixed]
    shares, failed = collect_client_shares(agent.node.store, extra, round_terms(agent, round_, length),
                                           **_fetch_options(agent, round_))
    if failed:
        log.warning(format_fields(role=agent.role, address=agent.node.address, round=round_,
                                  note=f"{len(failed)} share(s) to take out of the sum no longer open: nothing posted"))
        return None
    total = summed.total.copy()
    for index, share in shares.items():
        add_weighted_share(total, share, (gf.MODULUS - summed.weights[index]) % gf.MODULUS)  # minus weight x share
    return without_check_tail(agent, total), fixed


def _tail_is_zero(agent: AggregatorAgent, blob: bytes) -> bool:
    """Whether a kept aggregate share ends with the zeros :func:`without_check_tail` leaves."""
    tail = checks_tail(agent)
    if not tail:
        return True
    try:
        share = decode_field_vector(blob, kind=VectorKind.AGGREGATE_SHARE, max_bytes=len(blob))
    except FedTSSError:
        return False
    return share.size >= tail and not share[share.size - tail :].any()


def without_check_tail(agent: AggregatorAgent, aggregate: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """``aggregate`` with the checks' tail (norm masks and pad) zeroed, as a new array: the sum of
    the clients' norm masks must never be public (:mod:`fedtss.validation`, "What it reveals"),
    and nothing needs the tail once the checks are done."""
    tail = checks_tail(agent)
    if not tail:
        return aggregate
    posted = aggregate.copy()
    posted[posted.size - tail :] = 0
    return posted


def compute_aggregate(agent: AggregatorAgent, round_: int) -> tuple[NDArray[np.uint64], ClientSet]:
    """This member's aggregate share over every client whose share opened, and that set."""
    result = aggregate_over(agent, round_, *open_round_shares(agent, round_), ClientSet(0))
    assert result is not None  # no fixed set: every client opened is in
    return result


def shares_over(shares: Mapping[int, NDArray[np.uint64]],
                fixed: ClientSet) -> dict[int, NDArray[np.uint64]] | None:
    """The shares to sum: every one opened while no set is fixed (``fixed`` empty), else
    exactly those of the fixed set, or None if this member lacks one of its clients."""
    if not fixed:
        return dict(shares)
    if any(index not in shares for index in fixed):
        return None
    return {index: shares[index] for index in fixed}


def record_exclusion(agent: AggregatorAgent, round_: int, *, reason: str, client: str | None = None,
                     member: int | None = None, member_address: str | None = None) -> None:
    """Append one exclusion to the member's ``exclusions.jsonl`` (:mod:`agents.records`): the log
    line says it to people, this record to programs."""
    record = ExclusionRecord(round_, reason, by=agent.node.address, client=client, member=member,
                             member_address=member_address)
    try:
        append_exclusion(Path(agent.node.config.node.state_dir), record)
    except OSError as exc:  # the record is a convenience: the log line already says it
        log.warning(format_fields(role=agent.role, address=agent.node.address, round=round_,
                                  note=f"cannot record the exclusion in {agent.node.config.node.state_dir}: "
                                       f"{exc.strerror}"))


def publish_aggregate(agent: AggregatorAgent, round_: int, aggregate: NDArray[np.uint64],
                      included: ClientSet) -> Outcome:
    """Send ``submitAggregateShare`` with the share's CID and client set, keeping the blob.

    Only shares over the one set ThresholdReached fixes ever become public. A share over
    another set, next to the public sum over the fixed one, would give anyone that member's
    share of the clients in only one of the two sets: with t - 1 colluding members, their
    updates. So the member keeps the blob in its ``state_dir`` and puts only its CID on chain
    (a hash of a blob its owner alone can compute); :func:`publish_own_share` stores it when
    the member hears ThresholdReached for exactly this set (``confirmations`` deep).
    """
    node = agent.node
    if len(included) < node.deployment.config.min_clients:
        return Outcome(note=f"only {len(included)} clients opened, below min_clients: nothing posted")
    clock = StepClock()
    cid = keep_unpublished_share(agent, round_, encode_field_vector(aggregate, kind=VectorKind.AGGREGATE_SHARE))
    clock.mark("keep")
    receipt = node.contract.submit_aggregate_share(node.account, round_, cid, included)
    clock.mark("send")
    note = f"included={included.bitmap:#x}"
    if round_ in agent.pending and publish_own_share(agent, round_):
        # It heard ThresholdReached before posting (a member catching up handles it first): its
        # start_reconstruction had nothing to publish, and the others wait for this blob.
        clock.mark("publish")
        note += "; published: the set was fixed before it posted"
    return Outcome(cid=cid, tx_hash=transaction_hash(receipt), note=note, steps=clock.steps)


def aggregate_and_submit(agent: AggregatorAgent, action: AggregateAndSubmit) -> Outcome:
    """Open every client's share, then post the sum over the round's client set.

    Before the set is fixed the sum covers every client this member opened; once fixed, it
    covers exactly that set (a member that opened more leaves the others out, so its share
    still counts and checks the others'), or nothing if the member lacks one of its clients.
    The set may be fixed between the check and the transaction: then it sums again over it.
    """
    if agent.check_period and masked_bits(agent) is None:
        return begin_checks(agent, action.round)
    return post_over_round_set(agent, action.round, *open_round_shares(agent, action.round))


def post_over_round_set(agent: AggregatorAgent, round_: int, opened: Opened, length: int) -> Outcome:
    """Post the aggregate share over the round's set (the fixed one, else this member's own)."""
    try:
        return _post_over_round_set(agent, round_, opened, length)
    except ContractRevert as exc:
        if exc.name != "RoundClientSetFixed":
            raise
        return _post_over_round_set(agent, round_, opened, length)  # fixed since it looked


def begin_checks(agent: AggregatorAgent, round_: int) -> Outcome:
    """Step 1 with the committee's checks (:mod:`agents.client_checks`): open and sum every client's
    share, projecting each as it opens, post the projections, and wait in the round for the
    verdict (:func:`decide_clients`, at a Tick or as checks arrive). Fetching stops a second before
    the checks' window closes, so that a client posting a CID nobody serves cannot make the member
    miss it (a member restarted after that window fetches within the usual budget: it only follows
    the others' verdict then, and a short budget would leave it without the shares to post)."""
    node = agent.node
    clock = StepClock()
    _, tensors = round_model(agent, round_)
    terms = round_terms(agent, round_, round_vector_length(agent, tensors))
    submissions = round_submissions(agent, round_)
    summed = ShareSum.empty(terms.vector_length)
    layout = CheckedLayout.of(terms.vector_length, metrics=len(node.deployment.model_metrics), threshold=terms.t)
    challenge = round_challenge_of(agent, round_)
    projections = ShareProjections(challenge_vector(challenge, terms.vector_length), layout, agent.member_index,
                                   norms=terms.norm_claims, wrap=WrapCheck.for_round(challenge, terms, layout))

    claims: dict[int, tuple[int, ...]] = {}
    refused: dict[int, str] = {}
    weights: dict[int, int] = {}
    claims_lock = Lock()  # fetch threads abandoned at the deadline may still hand one in

    def take(index: int, share: NDArray[np.uint64]) -> None:
        with claims_lock:
            weight = weights[index]
        summed.add(index, share, weight, checks=projections)  # checked as shared (unweighted), summed weighted

    def keep_claims(index: int, manifest: Manifest) -> None:
        read, refusal = client_claims(manifest, projections.wrap)
        with claims_lock:
            claims[index] = read
            if refusal is not None:
                refused[index] = refusal
            weights[index] = share_weight(manifest)

    checks_deadline, _ = node.contract.check_window(round_)
    if checks_deadline == 0:  # past Aggregating (a restart): the set is fixed, no verdict is needed
        return post_over_round_set(agent, round_, *open_round_shares(agent, round_))
    options = _fetch_options(agent, round_)
    to_checks_deadline = checks_deadline - node.chain_time() - 1
    if to_checks_deadline >= 1:  # else (a restart) its checks are too late anyway: fetch as without checks
        options["budget_seconds"] = min(options["budget_seconds"], to_checks_deadline)
    clock.mark("context")
    excluded = _open_each(node.store, submissions, terms, take, workers=MAX_FETCH_WORKERS,
                          opener=partial(open_client_share, on_manifest=keep_claims, on_proof=projections.keep_proof),
                          **options)
    log_exclusions(agent, round_, excluded)
    clock.mark("shares")
    with claims_lock:  # the claims of the clients it opened, fixed from here on
        opened_claims = {index: claims[index] for index in summed.clients if index in claims}
        opened_refused = {index: reason for index, reason in refused.items() if index in summed.clients}
    pending = PendingChecks(round_, summed, terms.vector_length, terms, tuple(submissions), projections,
                            claims=opened_claims if terms.norm_claims else None, refused=opened_refused)
    note = start_checks(agent, pending)
    agent.checking[round_] = pending
    clock.mark("checks")
    return Outcome(note=f"{note}; opened {len(summed.clients)} of {len(submissions)} clients", steps=clock.steps)


def decide_clients(agent: AggregatorAgent, action: DecideClients) -> Outcome:
    """Take the committee's verdict on the round's clients once it is settled, then post the
    aggregate share over the clients it kept (or over the set the chain fixed meanwhile)."""
    pending = agent.checking.get(action.round)
    if pending is None:
        return Outcome(note="not checking this round")
    try:
        verdict = step_checks(agent, pending)
    except Exception as exc:
        if not is_transient(exc):
            agent.checking.pop(action.round, None)
        raise
    if verdict is None:
        return Outcome(note="waiting for complaints")
    agent.checking.pop(action.round, None)
    summed = pending.opened
    assert isinstance(summed, ShareSum)
    by_index = {s.index: s for s in pending.submissions}
    log_exclusions(agent, action.round, [Exclusion(by_index[i], reason) for i, reason
                                         in sorted(verdict.excluded_clients.items())])
    committee = agent.node.contract.committee()
    for member in sorted(verdict.wrong_members):
        _log_bad_member(agent, action.round, member, committee[member - 1][0], "FalseCheck")
    for member, about in sorted(verdict.disputed.items()):
        log.warning(format_fields(role=agent.role, address=agent.node.address, round=action.round,
                                  disputed_member=member, clients=",".join(by_index[c].client for c in about),
                                  note="the member's check is off the client's polynomial; showing its share could "
                                       "reveal an honest client's update to t - 1 colluders, so nobody is named"))
    if verdict.norm_unchecked:
        log_unchecked_norms(agent, action.round, verdict, {i: s.client for i, s in by_index.items()})
    summed.withheld = ClientSet(sum(1 << index for index in verdict.excluded_clients))
    if pending.posted:
        return Outcome(note="verdict taken; the share was posted over the set the chain fixed first")
    return post_over_round_set(agent, action.round, summed, pending.length)


def log_unchecked_norms(agent: AggregatorAgent, round_: int, verdict: RoundVerdict, clients: Mapping[int, str]) -> None:
    """Name the kept clients whose norm went unchecked, and why: a limit beyond the field (a clip
    bound so large that even one sample's limit reaches p), or too few members' values matching the client's claims
    (members down or disputed, a client whose shares some members could not open, claims this
    member could not read). (A committee that can never check norms posts none, and has nothing
    to log here.)"""
    fields = dict(role=agent.role, address=agent.node.address, round=round_)
    beyond = set(verdict.norm_limit_beyond_field)
    if beyond:
        log.warning(format_fields(**fields, norm_unchecked=",".join(clients[c] for c in sorted(beyond)),
                                  note="clip_norm x 2^fractional_bits puts the norm limit beyond the field: lower "
                                       "clip_norm or fractional_bits to check norms"))
    if rest := [c for c in verdict.norm_unchecked if c not in beyond]:
        log.warning(format_fields(**fields, norm_unchecked=",".join(clients[c] for c in rest),
                                  note="fewer than 2t - 1 members on these clients' polynomials have norm values "
                                       "matching their claims (members down or disputed, shares they could not open, "
                                       "claims this member could not read): their norms are not checked"))


def _post_over_round_set(agent: AggregatorAgent, round_: int, opened: Opened, length: int) -> Outcome:
    fixed = agent.node.contract.round_info(round_).included_clients
    aggregate = aggregate_over(agent, round_, opened, length, fixed)
    if aggregate is None:
        return Outcome(note=f"the round's client set is fixed at {fixed.bitmap:#x} and this member could not "
                            f"open every client of it: nothing posted")
    return publish_aggregate(agent, round_, *aggregate)


def _unpublished_share_path(agent: AggregatorAgent, round_: int) -> Path:
    return Path(agent.node.config.node.state_dir) / UNPUBLISHED_SHARES_DIR / f"round-{round_}.bin"


def keep_unpublished_share(agent: AggregatorAgent, round_: int, blob: bytes) -> str:
    """Write this member's aggregate share to its state folder (0600), before its CID goes on
    chain, so that a member restarted in between can still publish it; returns the CID."""
    path = _unpublished_share_path(agent, round_)
    write_atomically(path, blob, mode=0o600)
    for older in path.parent.glob("round-*.bin"):  # an earlier round's share is of no more use
        number = older.stem.removeprefix("round-")
        if number.isdigit() and int(number) < round_:
            older.unlink(missing_ok=True)
    return compute_cid(blob)


def publish_own_share(agent: AggregatorAgent, round_: int) -> bool:
    """Store this member's aggregate share if the chain fixed the set it is over; say whether it did.

    Idempotent (the store is content-addressed). The blob comes from the state folder; if it
    is gone, the member computes it again, which gives the same bytes for the same set.
    """
    node = agent.node
    fixed = node.contract.round_info(round_).included_clients
    mine = [e for e in node.round_events(round_, AggregateShareSubmitted)
            if e.member.lower() == node.address.lower()]
    if not fixed or not mine or mine[-1].included_clients != fixed:
        return False
    cid = mine[-1].share_cid
    path = _unpublished_share_path(agent, round_)
    blob = path.read_bytes() if path.is_file() else b""
    if blob and not _tail_is_zero(agent, blob):  # kept by a version that posted the tail: never publish it
        blob = b""
    if compute_cid(blob) != cid:
        aggregate = aggregate_over(agent, round_, *open_round_shares(agent, round_, record=False), fixed)
        blob = b"" if aggregate is None else encode_field_vector(aggregate[0], kind=VectorKind.AGGREGATE_SHARE)
        if compute_cid(blob) != cid:
            log.error(format_fields(role=agent.role, address=node.address, round=round_, cid=cid,
                                    note="cannot rebuild the aggregate share posted on chain: not published"))
            return False
    node.store.put(blob)
    return True


def is_worth_waiting(*, settled: int, over_set: int, members: int, wanted: int,
                     waited: float, share_wait: float, remaining: float) -> bool:
    """Whether a member should wait longer for aggregate shares before reconstructing.

    ``settled`` members whose share is settled (in hand, found bad, or over another client
    set: nothing more will come from them), ``over_set`` shares in hand over the winning
    client set, ``wanted`` the number over the set it is waiting for, ``waited`` seconds since
    it heard ThresholdReached, ``remaining`` seconds then left to the proposal deadline. Every
    member's share is awaited for at most ``share_wait`` (more shares let the reconstruction
    exclude more wrong ones); beyond that only while fewer than ``wanted`` are in, and at
    most half the time left, so a committee with a member down still finishes the round.
    """
    if settled >= members:
        return False  # nobody is left to post
    if waited < min(share_wait, remaining / 2):
        return True
    return over_set < wanted and waited < remaining / 2


class AggregateShareFetcher:
    """The aggregate shares over one client set, fetched as their members publish them.

    :meth:`offer` takes each ``AggregateShareSubmitted`` of the round: a share over another
    set settles that member (nothing more will come from it), one over this set starts a
    fetch. A share whose blob is not in the store yet (its member publishes it when it hears
    ThresholdReached) is asked for again at the next :meth:`refresh`, one fetch in flight per
    member; a blob that is there but wrong names its member once. Use as a context manager:
    leaving it abandons fetches still in flight.
    """

    def __init__(self, agent: AggregatorAgent, round_: int, included: ClientSet, length: int) -> None:
        self.agent, self.round, self.included, self.length = agent, round_, included, length
        self.shares: dict[int, NDArray[np.uint64]] = {}
        self.bad: set[int] = set()
        self.other_set: set[int] = set()
        self._posted: dict[int, AggregateShareSubmitted] = {}
        self._inflight: dict[int, Future[NDArray[np.uint64]]] = {}
        self._started: dict[int, float] = {}  # when each member's fetch in flight started (monotonic)
        self._pool = ThreadPoolExecutor(max_workers=SHARE_FETCH_WORKERS, thread_name_prefix="share")

    def __enter__(self) -> AggregateShareFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def settled(self) -> int:
        """Members from whom nothing more will come: share in hand, found bad, or over another set."""
        return len(self.shares) + len(self.bad) + len(self.other_set)

    def offer(self, event: AggregateShareSubmitted) -> None:
        """Take one posted share of this round into account (again is a no-op)."""
        member = event.member_index
        if event.included_clients != self.included:
            self.other_set.add(member)
        elif member not in self._posted:
            self._posted[member] = event
            self._start(member)

    def offer_posted(self) -> None:
        """:meth:`offer` every share of the round on chain now (at the head)."""
        for event in self.agent.node.round_events(self.round, AggregateShareSubmitted):
            self.offer(event)

    def refresh(self, *, grace: float = 0.0) -> dict[int, NDArray[np.uint64]]:
        """Settle the fetches that finished, ask again for blobs that were not there yet, and give
        those in flight up to ``grace`` seconds to land (a share that is there is read in
        milliseconds: without it, the member would count it only at its next look)."""
        self.collect()
        for member in self._posted:
            if member not in self.shares and member not in self.bad and member not in self._inflight:
                self._start(member)
        if grace > 0:  # only fetches younger than the grace: one that hangs is not waited for at every look
            young = [f for m, f in self._inflight.items() if time.monotonic() - self._started[m] < grace]
            if young:
                wait(young, timeout=grace)
        return self.collect()

    def collect(self, *, wait_for_all: bool = False) -> dict[int, NDArray[np.uint64]]:
        """Settle the fetches that finished (with ``wait_for_all``, every one in flight)."""
        if wait_for_all:
            wait(list(self._inflight.values()))
        for member, future in list(self._inflight.items()):
            if future.done():
                del self._inflight[member]
                self._settle(member, future)
        return dict(self.shares)

    def _start(self, member: int) -> None:
        self._started[member] = time.monotonic()
        self._inflight[member] = self._pool.submit(self._fetch, self._posted[member].share_cid)

    def _fetch(self, cid: str) -> NDArray[np.uint64]:
        size = field_vector_bytes(self.length)
        blob = self.agent.node.store.get(cid, max_bytes=size)
        return decode_field_vector(blob, kind=VectorKind.AGGREGATE_SHARE, max_bytes=size,
                                   expected_length=self.length)

    def _settle(self, member: int, future: Future[NDArray[np.uint64]]) -> None:
        error = future.exception()
        if error is None:
            self.shares[member] = future.result()
        elif is_store_down(error):
            raise error  # our own store is unreachable: not this member's fault
        elif not is_unpublished(error):
            self.bad.add(member)
            _log_bad_member(self.agent, self.round, member, self._posted[member].member, fault_name(error))


def is_unpublished(error: BaseException) -> bool:
    """Whether a fetch failed only because the blob is not (yet) in the store: ask again later."""
    return isinstance(error, StorageError) and not isinstance(error, (CIDMismatch, BlobTooLarge))


def fetch_aggregate_shares(agent: AggregatorAgent, round_: int, included: ClientSet,
                           length: int) -> dict[int, NDArray[np.uint64]]:
    """Every aggregate share over exactly ``included`` that is published and readable, by member index."""
    with AggregateShareFetcher(agent, round_, included, length) as fetcher:
        fetcher.offer_posted()
        return fetcher.collect(wait_for_all=True)


def _log_bad_member(agent: AggregatorAgent, round_: int, index: int, address: str, reason: str) -> None:
    log.warning(format_fields(role=agent.role, address=agent.node.address, round=round_,
                              excluded_member=index, member_address=address, reason=reason))
    record_exclusion(agent, round_, member=index, member_address=address, reason=reason)


@dataclass
class PendingVote:
    """A round whose ThresholdReached this member heard and in which it has not voted yet.

    ``wanted`` and ``share_wait`` start at t + 1 and the configured wait; after inconsistent
    shares they become one more than the member had, with no extra wait (``inconsistent_at``
    remembers how many it had, so the same shares are never tried twice).
    """

    round: int
    included: ClientSet
    proposal_deadline: int
    tensors: dict[str, NDArray[np.float32]] = field(repr=False)
    fetcher: AggregateShareFetcher = field(repr=False)
    started: float
    remaining: float
    wanted: int
    share_wait: float
    inconsistent_at: int | None = None


def start_reconstruction(agent: AggregatorAgent, action: StartReconstruction) -> Outcome:
    """Publish this member's share, then start fetching the round's shares; the vote comes at a Tick
    (or as checks or complaints arrive).

    Heard again (a restart, a re-delivered block) it changes nothing; heard for a client set
    other than the one awaited (a reorganization fixed another), it starts over for that one.
    The round is waited in only once all of this succeeded: an error leaves nothing half set up.
    """
    node = agent.node
    pending = agent.pending.get(action.round)
    if pending is not None and pending.included == action.included_clients:
        return Outcome(note="already waiting for this round's aggregate shares")
    stop_waiting(agent, action.round)
    checking = agent.checking.get(action.round)
    if checking is not None and not checking.posted:  # the chain fixed the set before this member's verdict
        checking.posted = True  # the verdict still comes (decide_clients), to name whom it names
        try:
            post_over_round_set(agent, action.round, checking.opened, checking.length)
        except ContractRevert as exc:  # the round moved on: its share would not count any more
            log.info(format_fields(role=agent.role, address=node.address, round=action.round,
                                   note=f"own share over the fixed set not posted: {exc.name}"))
    published = publish_own_share(agent, action.round)
    _, tensors = round_model(agent, action.round)
    wanted = node.contract.threshold() + 1
    remaining = max(0.0, action.proposal_deadline - node.chain_time())
    vector_length = posted_vector_length(agent, action.round, action.included_clients,
                                         round_vector_length(agent, tensors))
    fetcher = AggregateShareFetcher(agent, action.round, action.included_clients, vector_length)
    try:
        fetcher.offer_posted()
    except BaseException:
        fetcher.close()
        raise
    agent.pending[action.round] = PendingVote(
        action.round, action.included_clients, action.proposal_deadline, tensors, fetcher,
        started=time.monotonic(), remaining=remaining, wanted=wanted, share_wait=agent.settings.share_wait_seconds,
    )
    return Outcome(note=f"own share {'published' if published else 'not over this set'}; "
                        f"waiting for aggregate shares over {action.included_clients.bitmap:#x}")


def stop_waiting(agent: AggregatorAgent, round_: int) -> None:
    """Forget a round this member waited in, abandoning its fetches."""
    pending = agent.pending.pop(round_, None)
    if pending is not None:
        pending.fetcher.close()


def fetch_share(agent: AggregatorAgent, action: FetchShare) -> Outcome:
    """Start fetching one member's aggregate share for a round this member is waiting in."""
    pending = agent.pending.get(action.event.round)
    if pending is not None:
        pending.fetcher.offer(action.event)
    return Outcome(note=f"member {action.event.member_index}'s share")


def waiting_rounds(agent: AggregatorAgent,
                   now_monotonic: float) -> dict[int | tuple[str, int], WaitingRound | CheckingRound]:
    """What the member knows of each round it waits in, after settling the fetches that ended.

    With ``confirmations`` > 0 the event follower delivers a share k blocks after it was posted,
    which could make a member go ahead with fewer shares than are out: so the round's shares
    are read at the head at each tick instead (they are public; a share's blob is published
    only once its set is fixed ``confirmations`` deep, so reading early reveals nothing).
    """
    members = len(agent.node.deployment.config.committee)
    read_at_head = agent.node.config.node.confirmations > 0
    waiting: dict[int | tuple[str, int], WaitingRound | CheckingRound] = {
        ("checks", round_): CheckingRound(round_, checks_ready(agent, pending))
        for round_, pending in agent.checking.items()
    }
    for round_, pending in agent.pending.items():
        if read_at_head:
            pending.fetcher.offer_posted()
        shares = pending.fetcher.refresh(grace=SHARE_FETCH_GRACE_SECONDS)
        waiting[round_] = WaitingRound(round_, settled=pending.fetcher.settled, over_set=len(shares),
                                       members=members, wanted=pending.wanted,
                                       waited=now_monotonic - pending.started, share_wait=pending.share_wait,
                                       remaining=pending.remaining)
    return waiting


def reconstruct_and_propose(agent: AggregatorAgent, action: ReconstructAndPropose,
                            random_bytes: Callable[[int], bytes] = os.urandom) -> Outcome:
    """Reconstruct from the shares in hand (naming wrong members) and vote.

    t shares cannot be checked at all, so the member has waited for a (t+1)-th (see
    :func:`is_worth_waiting`). t+1 shares detect a wrong one but one more is needed to exclude
    it: on InconsistentShares the member goes back to waiting for one more share, while time
    is left, instead of giving up its vote. The member keeps waiting in the round until it
    voted or gave up: a node or store that is away for a moment (a transient error, handled
    again at the next tick) does not cost the vote.
    """
    pending = agent.pending[action.round]
    try:
        outcome, done = _reconstruct_and_vote(agent, pending, random_bytes)
    except Exception as exc:
        if not is_transient(exc):
            stop_waiting(agent, action.round)
        raise
    if done:
        stop_waiting(agent, action.round)
    return outcome


def _reconstruct_and_vote(agent: AggregatorAgent, pending: PendingVote,
                          random_bytes: Callable[[int], bytes]) -> tuple[Outcome, bool]:
    """The vote's outcome, and whether the member is done with the round (False: wait on)."""
    node, round_ = agent.node, pending.round
    clock = StepClock()
    shares = pending.fetcher.collect()
    threshold = node.contract.threshold()
    try:
        model = reconstruct_round_model(agent, pending, shares, threshold, random_bytes(32))
        clock.mark("reconstruct")
    except InconsistentShares:
        if pending.inconsistent_at is not None and len(shares) <= pending.inconsistent_at:
            raise  # no share came since: the wrong one cannot be excluded
        agent.pending[round_] = replace(pending, inconsistent_at=len(shares), wanted=len(shares) + 1, share_wait=0.0)
        return Outcome(note="shares inconsistent; waiting for one more share"), False
    committee = node.contract.committee()
    if len(shares) == threshold:
        log.warning(format_fields(role=agent.role, address=node.address, round=round_,
                                  unchecked_shares=",".join(map(str, sorted(shares))),
                                  note="only t aggregate shares: a wrong one could not be detected"))
    for index in model.excluded_members:
        _log_bad_member(agent, round_, index, committee[index - 1][0], "InconsistentShares")
    state = node.contract.round_info(round_).state
    if state != RoundState.Reconstructing:  # t others voted first: a vote now would only revert
        return Outcome(note=f"round is {state} before this member's vote: not voting"), True
    if node.contract.member(node.address)[2] == round_:  # sent before a dropped connection hid the receipt
        return Outcome(note="already voted in this round"), True
    clock.mark("views")
    cid = node.store.put(model.blob)
    clock.mark("store")
    receipt = node.contract.propose_model(node.account, round_, cid)
    clock.mark("send")
    return Outcome(cid=cid, tx_hash=transaction_hash(receipt), steps=clock.steps,
                   note=f"shares={sorted(shares)} used={list(model.used_members)} samples={model.total_samples}"), True


def reconstruct_round_model(agent: AggregatorAgent, pending: PendingVote, shares: Mapping[int, NDArray[np.uint64]],
                            threshold: int, key: bytes) -> ReconstructedModel:
    """The round's new model from the posted vectors in hand, in the deployment's mode."""
    node = agent.node
    bits = masked_bits(agent)
    if bits is None:
        return reconstruct_model(pending.tensors, shares, threshold=threshold,
                                 quantization=agent.federation.quantization, key=key,
                                 metric_names=node.deployment.model_metrics, check_tail=checks_tail(agent))
    positions = submission_positions(agent, pending.round)
    terms = round_terms(agent, pending.round, round_vector_length(agent, pending.tensors))
    summed = reconstruct_masked_sum(shares, round_masked_sum(agent, pending.round, pending.included, terms),
                                    included_positions=[positions[index] for index in pending.included],
                                    clients=len(node.contract.clients()), threshold=threshold, bits=bits, key=key)
    return model_from_sum(pending.tensors, summed.secret, summed.reconstruction,
                          quantization=agent.federation.quantization, metric_names=node.deployment.model_metrics)


def round_masked_sum(agent: AggregatorAgent, round_: int, included: ClientSet, terms: RoundTerms) -> NDArray[np.uint64]:
    """The sum mod 2^b of the masked vectors of ``included``.

    From step 1's running sum when it holds every included client: the summed clients the set
    leaves out are read again and taken out, once (the result is kept for a retry). After a
    restart (or if step 1 missed a client of the set) the included vectors are read anew.
    """
    node = agent.node
    opened = agent.masked_step1.get(round_)
    wanted = frozenset(included)
    if opened is None or not wanted <= opened.summed:
        submissions = [s for s in round_submissions(agent, round_) if s.index in wanted]
        total = masked_sum_over((_read_round_vector(node, s, terms) for s in submissions), terms.modulus_bits)
        agent.masked_step1 = {round_: MaskedOpened(terms.modulus_bits, terms.vector_length, total=total, summed=wanted)}
        return total
    if opened.summed != wanted:
        extra = [s for s in round_submissions(agent, round_) if s.index in opened.summed - wanted]
        opened = opened.without({s.index: _read_round_vector(node, s, terms) for s in extra})
        agent.masked_step1 = {round_: opened}
    return opened.ring_total()


def _read_round_vector(node: Node, submission: Submission, terms: RoundTerms) -> NDArray[np.uint64]:
    """One submitter's masked vector again, through its manifest (checked as in step 1)."""
    manifest = parse_manifest(node.store.get(submission.manifest_cid, max_bytes=MANIFEST_MAX_BYTES))
    check_manifest(manifest, client=submission.client, terms=terms)
    return read_masked_vector(node.store, manifest.masked_cid, terms, max_blob_bytes=node.max_blob_bytes)


def resume_events(agent: AggregatorAgent) -> list[ThresholdReached]:
    """The current round's ThresholdReached if the round still awaits votes and this member has
    not voted: a member stopped while it waited for shares starts waiting again at start.

    Read ``confirmations`` deep, as the event follower would deliver it: the member publishes
    its share on this event, so it must never act on a ThresholdReached a reorganization may
    still take back.
    """
    node = agent.node
    confirmed = node.contract.chain.head_number() - node.config.node.confirmations
    if confirmed < node.deployment.deploy_block:
        return []
    round_ = node.contract.current_round(block=confirmed)
    if round_ == 0 or node.contract.member(node.address)[2] == round_:
        return []
    if node.contract.round_info(round_, block=confirmed).state != RoundState.Reconstructing:
        return []
    return node.round_events(round_, ThresholdReached, to_block=confirmed)[-1:]


# ------------------------------------------------------------------------ the agent


@dataclass
class AggregatorAgent:
    """A committee member process: its node, its X25519 key and its index in the committee."""

    node: Node
    settings: AggregatorSettings
    federation: FederationSettings
    sealing_key: SealingKey
    member_index: int
    #: The masked mode's ring bits, from the contract at start; None in the Shamir mode.
    modulus_bits: int | None = None
    #: The deployment's ``checkPeriod`` (seconds; 0: members do not check clients' shares).
    check_period: int = 0
    role: str = "aggregator"
    handlers: Mapping[type, Handler] = field(default_factory=lambda: HANDLERS)
    #: Rounds whose ThresholdReached this member heard and in which it has not voted yet.
    pending: dict[int, PendingVote] = field(default_factory=dict)
    #: Rounds whose clients this member checks with the committee, until their verdict.
    checking: dict[int, PendingChecks] = field(default_factory=dict)
    #: The masked mode's step 1 of the latest round it ran (seed rows, running masked sum), for step 2.
    masked_step1: dict[int, MaskedOpened] = field(default_factory=dict, repr=False)
    #: The last two global models read (by CID, checked and read-only): :func:`round_model`.
    models: dict[str, dict[str, NDArray[np.float32]]] = field(default_factory=dict, repr=False)

    def observe(self, event: ChainEvent | Tick) -> MemberView | frozenset[int] | dict[object, WaitingRound | CheckingRound] \
            | object:
        if isinstance(event, (ChecksSubmitted, ComplaintsSubmitted, AggregateShareSubmitted)) \
                and event.round not in self.checking and event.round not in self.pending:
            return NOTHING_TO_DECIDE  # a round it does not wait in (or an old one, replayed): no chain read
        if isinstance(event, (Tick, ChecksSubmitted, ComplaintsSubmitted)):
            return waiting_rounds(self, time.monotonic())
        if isinstance(event, AggregateShareSubmitted):
            return frozenset(self.pending)
        contract, round_ = self.node.contract, event.round
        index, last_share, last_vote = contract.member(self.node.address)
        info = contract.round_info(round_)
        return MemberView(index, last_share, last_vote, info.state, info.committee_deadline)

    def execute(self, action: AggregateAndSubmit | DecideClients | StartReconstruction | FetchShare
                | ReconstructAndPropose) -> Outcome:
        if isinstance(action, AggregateAndSubmit):
            return aggregate_and_submit(self, action)
        if isinstance(action, DecideClients):
            return decide_clients(self, action)
        if isinstance(action, StartReconstruction):
            return start_reconstruction(self, action)
        if isinstance(action, FetchShare):
            return fetch_share(self, action)
        return reconstruct_and_propose(self, action)

    tick_seconds: ClassVar[float] = TICK_SECONDS

    def is_waiting(self) -> bool:
        return bool(self.pending or self.checking)

    def resume_events(self) -> list[ChainEvent]:
        return resume_events(self)


def build_aggregator_agent(node: Node, environ: Mapping[str, str] | None = None) -> AggregatorAgent:
    """The member of ``node``'s config; refuses a key that is not the one on chain for it."""
    settings = node.config.aggregator
    if settings is None:
        raise ConfigError(f"{node.config.path}: a committee member needs an [aggregator] table")
    check_round_capacity(node)
    key = load_sealing_key(key_file=settings.sealing_key_file, key_env=settings.sealing_key_env,
                           environ=os.environ if environ is None else environ)
    index = node.contract.member(node.address)[0]
    if index == 0:
        raise ConfigError(f"{node.config.path}: {node.address} is not a member of the committee on chain")
    on_chain = node.contract.committee()[index - 1][1]
    if bytes(on_chain) != key.public_key:
        raise ConfigError(f"{node.config.path}: the sealing key does not match member {index}'s public key on chain")
    aggregation = node.contract.aggregation()
    if aggregation.is_masked:  # sums that could wrap around the ring stop the member here, not mid-round
        check_ring_capacity(node.config, aggregation.modulus_bits)
    elif node.contract.check_period():
        warm_up_wrap_around_check(member=True)  # its kernels' first compile, at start rather than in the checks' window
    return AggregatorAgent(node=node, settings=settings, federation=node.config.federation,
                           sealing_key=key, member_index=index,
                           modulus_bits=aggregation.modulus_bits if aggregation.is_masked else None,
                           check_period=node.contract.check_period())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], role="aggregator", build=build_aggregator_agent))
