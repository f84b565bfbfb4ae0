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
   mod p in submission order; the member stores the sum and sends
   ``submitAggregateShare(round, CID, includedBitmap)``, unless ThresholdReached already
   fixed a different client set (then it posts nothing: two public sums over sets that
   differ in one client would reveal that client's update).
2. ``ThresholdReached(round, set)`` -> :func:`on_threshold_reached`;
   :func:`reconstruct_and_propose` waits until all n members posted (or
   ``share_wait_seconds``; longer while only t shares are there, and again for one more
   when the shares it has are inconsistent, see :func:`is_worth_waiting`), fetches every aggregate share over exactly ``set``, and
   :func:`reconstruct_model` (pure) reconstructs with error correction (naming wrong
   members), dequantizes and applies the mean update. Every honest member gets the same
   model bytes, stores them and votes ``proposeModel(round, CID)``.

Which client set wins. Members may disagree about a client whose share opened for some and
not for others; each posts the set it could include. The contract emits ``ThresholdReached``
for the *first* set that t members posted, and every honest member reconstructs from shares
over exactly that set, so the committee cannot be split: the chain's order decides.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from agents.config import AggregatorSettings, FederationSettings
from agents.client import fetch_model
from agents.learning import apply_mean_update
from agents.runtime import Handler, Node, Outcome, Skip, format_fields, is_transient, log, main
from fedtss import field as gf
from fedtss.chain import ChainEvent, RoundState, transaction_hash
from fedtss.chain.keys import SealingKey, load_sealing_key
from fedtss.cid import cid_from_parts, cid_to_parts
from fedtss.errors import ConfigError, FormatError, InconsistentShares, ShareError, StorageError
from fedtss.formats import (
    MANIFEST_MAX_BYTES,
    Manifest,
    VectorKind,
    decode_field_vector,
    encode_field_vector,
    encode_model,
    flatten_model,
    parse_manifest,
)
from fedtss.quantize import QuantizationConfig, dequantize_sum
from fedtss.sealing import OVERHEAD, ShareContext, open_share
from fedtss.shamir import reconstruct_checked
from fedtss.storage import ContentStore

__all__ = [
    "HANDLERS",
    "AggregateAndSubmit",
    "AggregatorAgent",
    "Exclusion",
    "MemberView",
    "ReconstructAndPropose",
    "ReconstructedModel",
    "RoundTerms",
    "Submission",
    "aggregate_and_submit",
    "aggregate_shares",
    "build_aggregator_agent",
    "check_manifest",
    "collect_client_shares",
    "field_vector_bytes",
    "is_worth_waiting",
    "on_collection_closed",
    "on_threshold_reached",
    "open_client_share",
    "reconstruct_and_propose",
    "reconstruct_model",
]

#: Errors that exclude one client (bad bytes, missing blob, unopenable share), never a crash.
CLIENT_FAULTS = (FormatError, StorageError, ShareError)
_POLL_SECONDS = 0.2
#: Blobs a member fetches at once; each is one thread waiting on the store.
FETCH_WORKERS = 8
#: Share of the time left to the aggregation deadline a member spends fetching clients' blobs;
#: the rest is for summing, storing the aggregate share and getting its transaction mined.
FETCH_SHARE_OF_DEADLINE = 0.5
#: Each member's record of the parties it excluded, one JSON object a line, in ``state_dir``.
EXCLUSIONS_FILE = "exclusions.jsonl"


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
class ReconstructAndPropose:
    round: int
    included_clients: int
    proposal_deadline: int


def on_collection_closed(view: MemberView, event: ChainEvent, now: int) -> list[AggregateAndSubmit | Skip]:
    round_ = event.args["round"]
    if view.member_index == 0:
        return [Skip(round_, "not a committee member")]
    if view.last_share_round == round_:
        return [Skip(round_, "already posted an aggregate share in this round")]
    if view.state not in (RoundState.Aggregating, RoundState.Reconstructing):
        return [Skip(round_, f"round is {view.state}, not Aggregating")]
    if now > view.committee_deadline:
        return [Skip(round_, "aggregation deadline passed")]
    return [AggregateAndSubmit(round_)]


def on_threshold_reached(view: MemberView, event: ChainEvent, now: int) -> list[ReconstructAndPropose | Skip]:
    round_ = event.args["round"]
    if view.member_index == 0:
        return [Skip(round_, "not a committee member")]
    if view.last_vote_round == round_:
        return [Skip(round_, "already voted in this round")]
    if view.state != RoundState.Reconstructing:
        return [Skip(round_, f"round is {view.state}, not Reconstructing")]
    if now > event.args["proposalDeadline"]:
        return [Skip(round_, "proposal deadline passed")]
    return [ReconstructAndPropose(round_, event.args["includedClients"], event.args["proposalDeadline"])]


HANDLERS: Mapping[str, Handler] = {
    "CollectionClosed": on_collection_closed,
    "ThresholdReached": on_threshold_reached,
}


# ---------------------------------------------------------- step 1: aggregate shares


@dataclass(frozen=True)
class RoundTerms:
    """What every manifest of one round must say, as this member expects it."""

    chain_id: int
    contract: str
    round: int
    n: int
    t: int
    vector_length: int
    quantization: QuantizationConfig


@dataclass(frozen=True)
class Submission:
    """One ``UpdateSubmitted``: the client's bit ``index`` and where its manifest is."""

    index: int
    client: str
    manifest_cid: str


@dataclass(frozen=True)
class Exclusion:
    """A client left out of this member's aggregate, and why (a class name, never bytes)."""

    submission: Submission
    reason: str


def field_vector_bytes(length: int) -> int:
    """Size of an encoded field vector of ``length`` elements (16-byte header + 8 per element)."""
    return 16 + 8 * length


def check_manifest(manifest: Manifest, submission: Submission, terms: RoundTerms) -> None:
    """Raise FormatError unless the manifest is for this round, client, contract and federation."""
    expected = {
        "chain_id": terms.chain_id,
        "contract": terms.contract.lower(),
        "round": terms.round,
        "client": submission.client.lower(),
        "n": terms.n,
        "t": terms.t,
        "vector_length": terms.vector_length,
        "quantization": terms.quantization,
    }
    for name, value in expected.items():
        if getattr(manifest, name) != value:
            raise FormatError(f"manifest {name} does not match this round ({getattr(manifest, name)!r:.80})")


def open_client_share(
    store: ContentStore, submission: Submission, terms: RoundTerms, *,
    member_index: int, private_key: bytes, max_blob_bytes: int,
) -> NDArray[np.uint64]:
    """Fetch, check and open one client's share for this member; raises one of CLIENT_FAULTS."""
    blob = store.get(submission.manifest_cid, max_bytes=min(MANIFEST_MAX_BYTES, max_blob_bytes))
    manifest = parse_manifest(blob)
    check_manifest(manifest, submission, terms)
    plain_size = field_vector_bytes(terms.vector_length)
    sealed = store.get(manifest.share_cids[member_index - 1], max_bytes=plain_size + OVERHEAD)
    context = ShareContext(terms.chain_id, terms.contract, terms.round, submission.client, member_index)
    plaintext = open_share(sealed, private_key, context)
    return decode_field_vector(plaintext, kind=VectorKind.SHARE, max_bytes=plain_size,
                               expected_length=terms.vector_length)


def collect_client_shares(
    store: ContentStore, submissions: Sequence[Submission], terms: RoundTerms, *,
    member_index: int, private_key: bytes, max_blob_bytes: int,
    budget_seconds: float | None = None, workers: int = FETCH_WORKERS,
) -> tuple[dict[int, NDArray[np.uint64]], list[Exclusion]]:
    """Every submitter's opened share by bit index, and the clients excluded (with why).

    Clients are fetched ``workers`` at a time, so one slow or unprovidable blob costs its
    own client, not the others. A client whose share is not open after ``budget_seconds``
    is excluded as ``FetchTimedOut`` (its fetch is abandoned, not awaited). Anything a
    client's bytes make go wrong excludes that client, even an exception no check foresaw:
    only our own store being unreachable (:func:`is_store_down`) is raised, to be retried.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fetch")
    try:
        futures = {
            pool.submit(open_client_share, store, submission, terms, member_index=member_index,
                        private_key=private_key, max_blob_bytes=max_blob_bytes): submission
            for submission in submissions
        }
        done, late = wait(futures, timeout=budget_seconds)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    shares: dict[int, NDArray[np.uint64]] = {}
    excluded = [Exclusion(futures[future], "FetchTimedOut") for future in late]
    for future in done:
        submission, error = futures[future], future.exception()
        if error is None:
            shares[submission.index] = future.result()
        elif is_store_down(error):
            raise error  # our own store is unreachable: not this client's fault
        else:
            excluded.append(Exclusion(submission, fault_name(error)))
    return shares, sorted(excluded, key=lambda e: e.submission.index)


def is_store_down(error: BaseException) -> bool:
    """Whether ``error`` says our own store cannot be reached (retry later), not a bad blob."""
    return isinstance(error, StorageError) and is_transient(error)


def fault_name(error: BaseException) -> str:
    """The reason logged for an exclusion: the error's class, marked when no check foresaw it."""
    name = type(error).__name__
    return name if isinstance(error, CLIENT_FAULTS) else f"Unexpected{name}"


def aggregate_shares(shares: Mapping[int, NDArray[np.uint64]], length: int) -> tuple[NDArray[np.uint64], int]:
    """Sum the shares mod p in submission order; return (aggregate share, included bitmap)."""
    total = np.zeros(length, dtype=np.uint64)
    bitmap = 0
    for index in sorted(shares):
        total = gf.add(total, shares[index])
        bitmap |= 1 << index
    return total, bitmap


# ------------------------------------------------------- step 2: reconstruct the model


@dataclass(frozen=True)
class ReconstructedModel:
    """The new global model, its canonical blob, and what the reconstruction rested on."""

    tensors: dict[str, NDArray[np.float32]] = field(repr=False)
    blob: bytes = field(repr=False)
    used_members: tuple[int, ...]
    excluded_members: tuple[int, ...]
    total_samples: int


def reconstruct_model(
    global_tensors: Mapping[str, NDArray[np.float32]],
    aggregate_shares: Mapping[int, NDArray[np.uint64]],
    *,
    threshold: int,
    quantization: QuantizationConfig,
    key: bytes,
) -> ReconstructedModel:
    """Reconstruct the clients' summed update (naming wrong members) and apply its mean.

    ``aggregate_shares`` maps member index -> aggregate share over one client set; ``key``
    (32 fresh random bytes) seeds the error check. Equal honest inputs give equal blobs.
    """
    result = reconstruct_checked(aggregate_shares, threshold=threshold, key=key)
    mean, total_samples = dequantize_sum(result.secret, quantization)
    tensors = apply_mean_update(global_tensors, mean)
    return ReconstructedModel(tensors, encode_model(tensors), result.used_holders,
                              result.excluded_holders, total_samples)


# ---------------------------------------------------------------------- the edge


def round_model(agent: AggregatorAgent, round_: int) -> tuple[str, dict[str, NDArray[np.float32]]]:
    """The CID and tensors of the model round ``round_`` trains from (its RoundOpened)."""
    opened = agent.node.round_events(round_, "RoundOpened")
    if not opened:
        raise FormatError(f"no RoundOpened event for round {round_}")
    cid = cid_from_parts(opened[-1].args["modelCodec"], opened[-1].args["modelDigest"])
    return cid, fetch_model(agent.node, cid, agent.federation)


def round_submissions(agent: AggregatorAgent, round_: int) -> list[Submission]:
    """The round's submitters in order (the ``submitters`` view), with their manifest CIDs."""
    by_index = {e.args["index"]: e for e in agent.node.round_events(round_, "UpdateSubmitted")}
    submissions = []
    for index, client in enumerate(agent.node.contract.submitters(round_)):
        event = by_index.get(index)
        if event is None or event.args["client"] != client:
            raise FormatError(f"round {round_}: no UpdateSubmitted event for submitter {index} ({client})")
        submissions.append(Submission(index, client, cid_from_parts(event.args["codec"], event.args["digest"])))
    return submissions


def round_terms(agent: AggregatorAgent, round_: int, vector_length: int) -> RoundTerms:
    node = agent.node
    return RoundTerms(
        chain_id=node.deployment.chain_id,
        contract=node.deployment.address,
        round=round_,
        n=len(node.contract.committee()),
        t=node.contract.threshold(),
        vector_length=vector_length,
        quantization=agent.federation.quantization,
    )


def compute_aggregate(agent: AggregatorAgent, round_: int) -> tuple[NDArray[np.uint64], int]:
    """This member's aggregate share over every client whose share opened; logs exclusions.

    Fetching stops at :data:`FETCH_SHARE_OF_DEADLINE` of the time left to the aggregation
    deadline, so a client posting a CID nobody serves cannot make the member miss it.
    """
    node = agent.node
    _, tensors = round_model(agent, round_)
    terms = round_terms(agent, round_, flatten_model(tensors)[1].size + 1)
    time_left = node.contract.round_info(round_).committee_deadline - node.chain_time()
    shares, excluded = collect_client_shares(
        node.store, round_submissions(agent, round_), terms, member_index=agent.member_index,
        private_key=agent.sealing_key.private_key, max_blob_bytes=node.max_blob_bytes,
        budget_seconds=max(1.0, time_left * FETCH_SHARE_OF_DEADLINE),
    )
    for exclusion in excluded:
        log.warning(format_fields(role=agent.role, address=node.address, round=round_,
                                  excluded_client=exclusion.submission.client, reason=exclusion.reason))
        record_exclusion(agent, round_, client=exclusion.submission.client, reason=exclusion.reason)
    return aggregate_shares(shares, terms.vector_length)


def record_exclusion(agent: AggregatorAgent, round_: int, *, reason: str, client: str | None = None,
                     member: int | None = None) -> None:
    """Append one exclusion to the member's ``exclusions.jsonl``: the log is for people, this for programs.

    One line ``{"round": r, "client": "0x…", "reason": "FormatError"}`` (or ``"member": j``
    for a member's aggregate share), written with one ``write`` call in append mode.
    """
    entry: dict[str, object] = {"round": round_, "reason": reason}
    entry.update({"client": client} if client is not None else {"member": member})
    path = Path(agent.node.config.node.state_dir) / EXCLUSIONS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(entry, sort_keys=True) + "\n")
    except OSError as exc:  # the record is a convenience: the log line above already says it
        log.warning(format_fields(role=agent.role, address=agent.node.address, round=round_,
                                  note=f"cannot record the exclusion in {path}: {exc.strerror}"))


def publish_aggregate(agent: AggregatorAgent, round_: int, aggregate: NDArray[np.uint64], bitmap: int) -> Outcome:
    """Store the aggregate share and send ``submitAggregateShare`` with the included bitmap.

    Once ThresholdReached has fixed the round's client set, a share over any other set would
    let the difference of two public sums reveal one client's update: the contract refuses
    it, and a member that could not include exactly that set posts nothing.
    """
    node = agent.node
    included = bitmap.bit_count()
    if included < node.deployment.config.min_clients:
        return Outcome(note=f"only {included} clients opened, below min_clients: nothing posted")
    fixed = node.contract.round_info(round_).included_clients
    if fixed and fixed != bitmap:
        return Outcome(note=f"the round's client set is fixed at {fixed:#x}; this member opened "
                            f"{bitmap:#x}: nothing posted")
    cid = node.store.put(encode_field_vector(aggregate, kind=VectorKind.AGGREGATE_SHARE))
    receipt = node.contract.submit_aggregate_share(node.account, round_, *cid_to_parts(cid), bitmap)
    return Outcome(cid=cid, tx_hash=transaction_hash(receipt), note=f"included={bitmap:#x}")


def aggregate_and_submit(agent: AggregatorAgent, action: AggregateAndSubmit) -> Outcome:
    aggregate, bitmap = compute_aggregate(agent, action.round)
    return publish_aggregate(agent, action.round, aggregate, bitmap)


def is_worth_waiting(*, posted: int, over_set: int, members: int, wanted: int,
                     waited: float, share_wait: float, remaining: float) -> bool:
    """Whether a member should wait longer for aggregate shares before reconstructing.

    ``posted`` shares so far (any set), ``over_set`` of them over the winning client set,
    ``wanted`` the number over the set it is waiting for, ``waited`` seconds since it heard
    ThresholdReached, ``remaining`` seconds then left to the proposal deadline. Every member's
    share is awaited for at most ``share_wait`` (more shares let the reconstruction exclude
    more wrong ones); beyond that only while fewer than ``wanted`` are in, and at most half
    the time left, so a committee with a member down still finishes the round.
    """
    if posted >= members:
        return False  # nobody is left to post
    if waited < min(share_wait, remaining / 2):
        return True
    return over_set < wanted and waited < remaining / 2


@dataclass(frozen=True)
class _Waiting:
    """When the member heard ThresholdReached, and how long it then had to vote."""

    started: float
    remaining: float


def wait_for_shares(agent: AggregatorAgent, action: ReconstructAndPropose, since: _Waiting, *,
                    wanted: int, share_wait: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll the chain while :func:`is_worth_waiting`; return whether ``wanted`` shares are in."""
    node = agent.node
    members = len(node.deployment.config.committee)
    while True:
        over_set = node.contract.share_count(action.round, action.included_clients)
        if not is_worth_waiting(posted=node.contract.round_info(action.round).shares, over_set=over_set,
                                members=members, wanted=wanted, waited=time.monotonic() - since.started,
                                share_wait=share_wait, remaining=since.remaining):
            return over_set >= wanted
        sleep(_POLL_SECONDS)


def fetch_aggregate_shares(agent: AggregatorAgent, round_: int, included: int,
                           length: int) -> dict[int, NDArray[np.uint64]]:
    """Every readable aggregate share over exactly ``included``, by member index."""
    shares = {}
    for event in agent.node.round_events(round_, "AggregateShareSubmitted"):
        if event.args["includedClients"] != included:
            continue
        member = event.args["memberIndex"]
        try:
            blob = agent.node.store.get(cid_from_parts(event.args["codec"], event.args["digest"]),
                                        max_bytes=field_vector_bytes(length))
            shares[member] = decode_field_vector(blob, kind=VectorKind.AGGREGATE_SHARE,
                                                 max_bytes=field_vector_bytes(length), expected_length=length)
        except Exception as exc:  # noqa: BLE001 - nothing a member posts may end this process
            if is_store_down(exc):
                raise  # our own store is unreachable: not this member's fault
            _log_bad_member(agent, round_, member, event.args["member"], fault_name(exc))
    return shares


def _log_bad_member(agent: AggregatorAgent, round_: int, index: int, address: str, reason: str) -> None:
    log.warning(format_fields(role=agent.role, address=agent.node.address, round=round_,
                              excluded_member=index, member_address=address, reason=reason))
    record_exclusion(agent, round_, member=index, reason=reason)


def reconstruct_and_propose(agent: AggregatorAgent, action: ReconstructAndPropose,
                            random_bytes: Callable[[int], bytes] = os.urandom) -> Outcome:
    """Wait for the shares, reconstruct (naming wrong members), store the model and vote.

    t shares cannot be checked at all, so the member first waits for a (t+1)-th (see
    :func:`is_worth_waiting`). t+1 shares detect a wrong one but one more is needed to exclude
    it: on InconsistentShares the member waits for another share and tries again, while time
    is left, instead of giving up its vote.
    """
    node = agent.node
    threshold = node.contract.threshold()
    since = _Waiting(time.monotonic(), max(0.0, action.proposal_deadline - node.chain_time()))
    wait_for_shares(agent, action, since, wanted=threshold + 1, share_wait=agent.settings.share_wait_seconds)
    _, tensors = round_model(agent, action.round)
    length = flatten_model(tensors)[1].size + 1
    while True:
        posted = node.contract.share_count(action.round, action.included_clients)
        shares = fetch_aggregate_shares(agent, action.round, action.included_clients, length)
        try:
            model = reconstruct_model(tensors, shares, threshold=threshold,
                                      quantization=agent.federation.quantization, key=random_bytes(32))
            break
        except InconsistentShares:
            if not wait_for_shares(agent, action, since, wanted=posted + 1, share_wait=0.0):
                raise
            log.info(format_fields(role=agent.role, address=node.address, round=action.round,
                                   note="shares inconsistent; retrying with one more share"))
    committee = node.contract.committee()
    if len(shares) == threshold:
        log.warning(format_fields(role=agent.role, address=node.address, round=action.round,
                                  unchecked_shares=",".join(map(str, sorted(shares))),
                                  note="only t aggregate shares: a wrong one could not be detected"))
    for index in model.excluded_members:
        _log_bad_member(agent, action.round, index, committee[index - 1][0], "InconsistentShares")
    cid = node.store.put(model.blob)
    receipt = node.contract.propose_model(node.account, action.round, *cid_to_parts(cid))
    return Outcome(cid=cid, tx_hash=transaction_hash(receipt),
                   note=f"shares={sorted(shares)} used={list(model.used_members)} samples={model.total_samples}")


# ------------------------------------------------------------------------ the agent


@dataclass
class AggregatorAgent:
    """A committee member process: its node, its X25519 key and its index in the committee."""

    node: Node
    settings: AggregatorSettings
    federation: FederationSettings
    sealing_key: SealingKey
    member_index: int
    role: str = "aggregator"
    handlers: Mapping[str, Handler] = field(default_factory=lambda: HANDLERS)

    def observe(self, event: ChainEvent) -> MemberView:
        contract, round_ = self.node.contract, event.args["round"]
        index, last_share, last_vote = contract.member(self.node.address)
        info = contract.round_info(round_)
        return MemberView(index, last_share, last_vote, info.state, info.committee_deadline)

    def execute(self, action: AggregateAndSubmit | ReconstructAndPropose) -> Outcome:
        if isinstance(action, AggregateAndSubmit):
            return aggregate_and_submit(self, action)
        return reconstruct_and_propose(self, action)


def build_aggregator_agent(node: Node, environ: Mapping[str, str] | None = None) -> AggregatorAgent:
    """The member of ``node``'s config; refuses a key that is not the one on chain for it."""
    settings = node.config.aggregator
    if settings is None:
        raise ConfigError(f"{node.config.path}: a committee member needs an [aggregator] table")
    key = load_sealing_key(key_file=settings.sealing_key_file, key_env=settings.sealing_key_env,
                           environ=os.environ if environ is None else environ)
    index = node.contract.member(node.address)[0]
    if index == 0:
        raise ConfigError(f"{node.config.path}: {node.address} is not a member of the committee on chain")
    on_chain = node.contract.committee()[index - 1][1]
    if bytes(on_chain) != key.public_key:
        raise ConfigError(f"{node.config.path}: the sealing key does not match member {index}'s public key on chain")
    return AggregatorAgent(node=node, settings=settings, federation=node.config.federation,
                           sealing_key=key, member_index=index)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], role="aggregator", build=build_aggregator_agent))
