"""A member checks every client's shares with the rest of the committee, without showing them (Shamir mode).

Between opening its shares and posting its aggregate share, member j (when the deployment's
``checkPeriod`` is not 0; :func:`agents.aggregator.begin_checks` and
:func:`agents.aggregator.decide_clients` call what is here):

1. checks each share as it opens (:func:`fedtss.validation.check_share`): its projection on the
   round's challenge (from the hash of the block that closed collection), its share of the sample
   count, and its value on the client's squared-norm polynomial; and posts them, three field
   elements per client, with ``submitChecks`` (:func:`start_checks`); it keeps each client's
   manifest's norm claims, the values the client says every member holds;
2. waits in the round, looking at each clock Tick and as each member's checks or complaints
   arrive, until every member posted its checks or the
   checks' window closed (:func:`checks_ready`), then decodes each client's projections;
3. if its own projection is off a client's polynomial, or its norm value is not what the client
   claimed for it, it complains: ``submitComplaints`` with the AES key of that client's sealed
   share for it (:func:`post_complaints`), so that anyone can open that one share and check it
   (:func:`complaint_projections`); and for each client whose share reached it but cannot be
   used (posted as "not opened"), it shows why: the proven X25519 secret of a share that does
   not open (:mod:`fedtss.decryption_proof`), or the key of one that opens to no share;
4. once every member whose projection or norm value was off complained, or the complaints' window closed,
   takes the verdict (:func:`fedtss.validation.round_verdict`, in :func:`step_checks`): clients
   that sealed inconsistent or unusable shares, shared a sample count out of range, claimed a norm above the
   clip bound or norm values their shares contradict are excluded by name (and, by a committee
   of n >= 3t - 2, clients whose norm it could not check), members that posted false checks are
   named, and the member posts its aggregate share over the clients kept.

Every input of the verdict is on chain or in the store and fixed once the windows close (the
contract refuses checks and complaints after them), so every honest member reaches the same
one. In a round where every member is up and nobody cheats, no member waits for a window to
close: the verdict comes as soon as the n-th member's checks are mined.
"""

from __future__ import annotations

import os
import time

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from agents.runtime import is_transient
from fedtss.chain import ChecksSubmitted, CollectionClosed, ComplaintsSubmitted
from fedtss.errors import BlobTooLarge, ContractRevert, FedTSSError, FormatError, ShareError, StorageError
from fedtss.quantize import QuantizationConfig
from fedtss.formats import (
    MANIFEST_MAX_BYTES,
    Manifest,
    RoundTerms,
    VectorKind,
    check_manifest,
    decode_field_vector,
    field_vector_bytes,
    parse_manifest,
)
from fedtss.decryption_proof import Shown, complaint_evidence, read_complaint_key
from fedtss.field import MODULUS
from fedtss.randomness import uniform_field_elements
from fedtss.sealing import OVERHEAD, PROOF_OVERHEAD, ShareContext, open_proof
from fedtss.storage import ContentStore
from fedtss.validation import (
    Check,
    CheckedLayout,
    UNUSABLE,
    RoundVerdict,
    decode_checks,
    check_share,
    committee_excludes_unchecked_norms,
    encode_checks,
    round_challenge,
    project_share,
    round_verdict,
    squared_norm_limit,
)
from fedtss.wraparound import (
    RelationTables,
    WrapBounds,
    bit_check_value,
    bit_check_weights,
    bits_seed,
    claims_factor,
    combine_claims,
    projection_seed,
    projection_words,
    read_bit_claims,
    relation_gamma,
    relation_tables,
    relation_value,
)

if TYPE_CHECKING:
    from agents.aggregator import AggregatorAgent, Submission

__all__ = [
    "ClientProof",
    "PendingChecks",
    "WrapCheck",
    "ShareProjections",
    "checks_in",
    "checks_ready",
    "complaint_projections",
    "post_checks",
    "post_complaints",
    "read_client_manifest",
    "round_challenge_of",
    "start_checks",
    "step_checks",
]

PROOF_RHO_LABEL = b"fedtss/wraparound/proof-rho/v1"


@dataclass(frozen=True)
class ClientProof:
    """What this member needs of one client's wrap-around proof: its share of the proof vector,
    the seed of the client's projections and its bit-check weights (:mod:`fedtss.wraparound`)."""

    share: NDArray[np.uint64] = field(repr=False)
    seed: bytes = field(repr=False)  # of its projections (the words are d x 8 bytes: made when checked)
    weights: NDArray[np.uint64] = field(repr=False)


@dataclass(frozen=True)
class WrapCheck:
    """The round's wrap-around check as every member runs it: its bounds, the relation's tables
    (from gamma), the proof's projection vector and the factor R that folds the bit check into
    the posted norm value (all from the round's challenge). Each check a member posts about a
    client then also covers its proof: the projection adds <rho', proof share>, the count share
    adds the client's relation value (so it decodes to the count only if every relation holds)
    and the norm value adds R times the bit-check value (and the client's norm claims R times its
    bit claims, which must decode to 0 at 0)."""

    bounds: WrapBounds
    tables: RelationTables = field(repr=False)
    rho: NDArray[np.uint64] = field(repr=False)
    factor: int
    terms: RoundTerms = field(repr=False)
    layout: CheckedLayout

    @classmethod
    def for_round(cls, challenge: bytes, terms: RoundTerms, layout: CheckedLayout) -> WrapCheck | None:
        """The round's check, or None when it has no wrap-around proofs (no norm claims)."""
        if terms.proof_length is None:
            return None
        bounds = WrapBounds.of(terms.quantization, update=layout.update, metrics=layout.metrics)
        return cls(bounds, relation_tables(relation_gamma(challenge), bounds),
                   uniform_field_elements(challenge, terms.proof_length, label=PROOF_RHO_LABEL),
                   claims_factor(challenge), terms, layout)

    def client_proof(self, manifest: Manifest, share: NDArray[np.uint64]) -> ClientProof:
        """The proof of the client ``manifest`` is from, given this member's share of it."""
        terms = self.terms
        seed = projection_seed(chain_id=terms.chain_id, contract=terms.contract, round_=terms.round,
                               client=manifest.client, share_cids=manifest.share_cids)
        return ClientProof(share, seed, bit_check_weights(bits_seed(seed, manifest.proof_cids), self.bounds))

    def extras(self, share: NDArray[np.uint64], proof: ClientProof, member: int) -> Check:
        """What member ``member``'s check of ``share`` adds for the client's ``proof``: the proof's
        projection on rho', the client's relation value, R times its bit-check value."""
        words = projection_words(proof.seed, self.bounds.update)
        relation = relation_value(share[: self.bounds.update], proof.share, words, self.tables,
                                  share[self.layout.metrics_slice])
        bits = bit_check_value(proof.share, proof.weights, member, threshold=self.terms.t)
        return project_share(proof.share, self.rho), relation, self.factor * bits % MODULUS

    @staticmethod
    def combine(check: Check, extras: Check) -> Check:
        return tuple((value + extra) % MODULUS for value, extra in zip(check, extras, strict=True))  # type: ignore[return-value]

    def claims(self, manifest: Manifest) -> tuple[tuple[int, ...], str | None]:
        """The client's combined claims (norm + R bits) and, if its bit claims do not decode to 0
        at 0 (its bits are not all bits), why it is excluded."""
        refusal = None if read_bit_claims(manifest.bit_claims, self.terms.t) else "InvalidProjectionBits"
        return combine_claims(manifest.norm_claims, manifest.bit_claims, self.factor), refusal


@dataclass
class ShareProjections:
    """This member's check of each share it opened, by submission index (taken as it opens): the
    share's projection on rho, its share of the sample count, and its norm value (member
    ``member`` of a vector laid out as ``layout``)."""

    rho: NDArray[np.uint64] = field(repr=False)
    layout: CheckedLayout
    member: int
    #: Whether the committee can check norms (:func:`fedtss.validation.committee_decides_norms`);
    #: if not, 0 is posted in place of every norm value.
    norms: bool = True
    #: The round's wrap-around check (with the norm claims), else None.
    wrap: WrapCheck | None = None
    values: dict[int, Check] = field(default_factory=dict)
    #: Each opened client's proof (handed in as it opens, before its share).
    proofs: dict[int, ClientProof] = field(default_factory=dict, repr=False)
    _lock: Lock = field(default_factory=Lock, repr=False)

    def check(self, share: NDArray[np.uint64], member: int | None = None, *,
              add_to: NDArray[np.uint64] | None = None, weight: int = 1, proof: ClientProof | None = None) -> Check:
        """The check of ``share`` as member ``member`` (this member by default) posts it; with
        ``add_to``, ``weight`` times the share is added to it in the same pass
        (:func:`fedtss.validation.check_share`); with the wrap-around check, over ``proof`` too."""
        member = self.member if member is None else member
        extras = None
        if self.wrap is not None:  # before the share is added: a proof that raises leaves the sum as it was
            if proof is None:
                raise FormatError("a share without its wrap-around proof")
            extras = self.wrap.extras(share, proof, member)
        projection, count, norm = check_share(share, self.rho, self.layout, member, add_to=add_to, weight=weight)
        value = (projection, count, norm if self.norms else 0)
        return value if extras is None else WrapCheck.combine(value, extras)

    def keep_proof(self, index: int, manifest: Manifest, share: NDArray[np.uint64]) -> None:
        """Keep client ``index``'s proof (this member's share of it) for its check."""
        if self.wrap is not None:
            proof = self.wrap.client_proof(manifest, share)
            with self._lock:
                self.proofs[index] = proof

    def norm_limit(self, quantization: QuantizationConfig, *,
                   weighted_by_members: bool = False) -> Callable[[int], int] | None:
        """Shared sample count -> the largest squared norm clipping allows for this round's vectors
        (None when the committee cannot decide norms: they are not checked). Where the members
        weight updates, every client shares its update unweighted: the limit is one sample's."""
        if not self.norms:
            return None
        layout = self.layout
        if weighted_by_members:
            limit = squared_norm_limit(quantization, 1, update=layout.update)
            return lambda _shared_count: limit
        return lambda samples: squared_norm_limit(quantization, samples, update=layout.update)

    def take(self, index: int, share: NDArray[np.uint64], *, add_to: NDArray[np.uint64] | None = None,
             weight: int = 1) -> None:
        """Check client ``index``'s share (and add it to ``add_to``, as :meth:`check`) and keep the check."""
        with self._lock:
            proof = self.proofs.pop(index, None)
        value = self.check(share, add_to=add_to, weight=weight, proof=proof)
        with self._lock:
            self.values[index] = value

    def posted(self, clients: int) -> list[Check | None]:
        return [self.values.get(index) for index in range(clients)]


def round_challenge_of(agent: AggregatorAgent, round_: int) -> bytes:
    """The round's challenge (:func:`fedtss.validation.round_challenge`): the hash of the block
    that closed its collection, bound to the round."""
    node = agent.node
    closed = node.round_events(round_, CollectionClosed)
    if not closed:
        raise FedTSSError(f"round {round_}: no CollectionClosed event to take the challenge from")
    block = node.contract.chain.block(closed[-1].block_number)
    if block is None:
        raise FedTSSError(f"round {round_}: block {closed[-1].block_number} is not on the node")
    return round_challenge(chain_id=node.deployment.chain_id, contract=node.deployment.address, round_=round_,
                           block_hash=bytes.fromhex(block.hash.removeprefix("0x")))


def post_checks(agent: AggregatorAgent, round_: int, checks: Sequence[Check | None]) -> bool:
    """Send ``submitChecks`` unless this member already did in ``round_`` (a restart); say whether it sent."""
    node = agent.node
    mine = [e for e in node.round_events(round_, ChecksSubmitted) if e.member_index == agent.member_index]
    if mine:
        return False
    node.contract.submit_checks(node.account, round_, encode_checks(checks))
    return True


def posted_checks(agent: AggregatorAgent, round_: int, clients: int) -> dict[int, list[Check | None]]:
    """Member index -> its posted checks (the first post of each member; the contract allows one)."""
    checks: dict[int, list[Check | None]] = {}
    for event in agent.node.round_events(round_, ChecksSubmitted):
        if event.member_index not in checks:
            try:
                checks[event.member_index] = decode_checks(event.checks, clients)
            except FormatError:  # the contract checks the length; anything else counts as no checks
                continue
    return checks


def posted_complaints(agent: AggregatorAgent, round_: int) -> dict[int, dict[int, bytes]]:
    """Member index -> {client index: its evidence} (the first post of each member)."""
    complaints: dict[int, dict[int, bytes]] = {}
    for event in agent.node.round_events(round_, ComplaintsSubmitted):
        if event.member_index not in complaints:
            complaints[event.member_index] = dict(zip(event.client_indices, event.evidence, strict=True))
    return complaints


def read_client_manifest(store: ContentStore, submission: Submission, terms: RoundTerms, *,
                         max_blob_bytes: int, timeout: float | None = None) -> Manifest:
    """Fetch one client's manifest and check it is for this round; raises one of CLIENT_FAULTS."""
    manifest = parse_manifest(store.get(submission.manifest_cid, max_bytes=min(MANIFEST_MAX_BYTES, max_blob_bytes),
                                        timeout=timeout))
    check_manifest(manifest, client=submission.client, terms=terms)
    return manifest


@dataclass(frozen=True)
class SealedBlobs:
    """What a client sealed for one member: its share, and its sealed proof share (None where the
    round has no wrap-around proofs)."""

    manifest: Manifest
    share: bytes = field(repr=False)
    proof: bytes | None = field(default=None, repr=False)


def _sealed_share(store: ContentStore, submission: Submission, terms: RoundTerms, member_index: int,
                  max_blob_bytes: int, *, timeout: float | None = None) -> SealedBlobs:
    manifest = read_client_manifest(store, submission, terms, max_blob_bytes=max_blob_bytes, timeout=timeout)
    share = store.get(manifest.share_cids[member_index - 1],
                      max_bytes=field_vector_bytes(terms.vector_length) + OVERHEAD, timeout=timeout)
    if terms.proof_length is None:
        return SealedBlobs(manifest, share)
    proof = store.get(manifest.proof_cids[member_index - 1], max_bytes=sealed_proof_bytes(terms), timeout=timeout)
    return SealedBlobs(manifest, share, proof)


def sealed_proof_bytes(terms: RoundTerms) -> int:
    """The size of one sealed proof share (0 where the round has no wrap-around proofs)."""
    return 0 if terms.proof_length is None else field_vector_bytes(terms.proof_length) + PROOF_OVERHEAD


def open_client_proof(sealed: bytes, key: bytes, context: ShareContext, terms: RoundTerms) -> NDArray[np.uint64]:
    """Member ``context.member_index``'s proof share from its sealed proof and the key of its sealed
    share; FormatError or InvalidSealedShare (the client's fault)."""
    if terms.proof_length is None:
        raise FormatError("this round has no wrap-around proofs")
    plaintext = open_proof(sealed, key, context)
    return decode_field_vector(plaintext, kind=VectorKind.PROOF_SHARE, max_bytes=sealed_proof_bytes(terms),
                               expected_length=terms.proof_length)


def post_complaints(agent: AggregatorAgent, round_: int, clients: Sequence[Submission], terms: RoundTerms, *,
                    opened: Callable[[int], bool]) -> int:
    """Show this member's sealed share from each of these clients (:func:`fedtss.decryption_proof.complaint_evidence`:
    its key, or the proven secret of a share that does not open); return how many it showed. A
    client it did not open (``opened`` says) is shown only where its share is here and the
    client's fault (:data:`UNUSABLE`): a share it can use now (a fetch that timed out at opening)
    or one it cannot fetch is not. The complaints go out even if empty: the others wait for them."""
    node, j = agent.node, agent.member_index
    if j in posted_complaints(agent, round_):
        return 0
    pairs = []
    started = time.monotonic()
    for submission in clients:
        context = ShareContext(terms.chain_id, terms.contract, terms.round, submission.client, j)
        was_opened = opened(submission.index)
        if not was_opened and time.monotonic() - started > CLAIMS_BUDGET_SECONDS:
            continue
        try:
            sealed = _sealed_share(node.store, submission, terms, j, node.max_blob_bytes,
                                   timeout=None if was_opened else CLAIMS_FETCH_SECONDS)
            evidence = complaint_evidence(sealed.share, agent.sealing_key.private_key, context,
                                          nonce_seed=os.urandom(32))
            if not was_opened and shown_share(sealed, evidence, agent.sealing_key.public_key, context,
                                              terms) != UNUSABLE:
                continue
        except BlobTooLarge:  # its CID fixes its size: anyone fetching it sees the same
            evidence = bytes(32)
        except (FedTSSError, ValueError) as exc:  # gone since, or never here: nothing to show
            if isinstance(exc, StorageError) and is_transient(exc) and was_opened:
                raise
            continue
        pairs.append((submission.index, evidence))
    node.contract.submit_complaints(node.account, round_, pairs)
    return len(pairs)


@dataclass(frozen=True)
class ShownShare:
    """A share a complaint shows, with the member's share of the client's proof (None where the
    round has no wrap-around proofs)."""

    share: NDArray[np.uint64] = field(repr=False)
    proof: NDArray[np.uint64] | None = field(default=None, repr=False)


def shown_share(sealed: SealedBlobs, evidence: bytes, member_key: bytes, context: ShareContext,
                terms: RoundTerms) -> ShownShare | str | None:
    """What one complaint shows: the member's share and proof share (its evidence opens the share
    to a well-formed one, and the share's key opens the proof), :data:`fedtss.validation.UNUSABLE`
    (the client's fault: a proven secret that does not open the blob, bytes that are no share, a
    header no honest client writes, a proof that does not open or decode) or None (evidence of nothing)."""
    shown = read_complaint_key(sealed.share, evidence, member_key, context)
    if shown is Shown.UNUSABLE:
        return UNUSABLE
    if shown is Shown.NOTHING:
        return None
    plaintext, key = shown
    try:
        share = decode_field_vector(plaintext, kind=VectorKind.SHARE, max_bytes=field_vector_bytes(terms.vector_length),
                                    expected_length=terms.vector_length)
        if terms.proof_length is None:
            return ShownShare(share)
        if sealed.proof is None:
            raise FormatError("no sealed proof share beside the share")
        return ShownShare(share, open_client_proof(sealed.proof, key, context, terms))
    except (FormatError, ShareError):
        return UNUSABLE


def complaint_projections(store: ContentStore, submissions: Mapping[int, Submission], terms: RoundTerms,
                          complaints: Mapping[int, Mapping[int, bytes]], checker: ShareProjections, *,
                          max_blob_bytes: int, member_keys: Sequence[bytes]) -> dict[tuple[int, int], Check | str | None]:
    """(member, client) -> the check of the share the member's evidence shows, UNUSABLE, or None
    (:func:`shown_share`); a blob larger than a share is UNUSABLE whatever the evidence (its CID
    fixes its size). A blob this member cannot fetch is left out, undecided here: a member that
    posted "not opened" is then not named for its complaint (it had the blob), while one that
    posted a check must still back it, as without the complaint."""
    shown: dict[tuple[int, int], Check | str | None] = {}
    for member, pieces in complaints.items():
        for client, evidence in pieces.items():
            submission = submissions.get(client)
            try:
                if submission is None or not 1 <= member <= len(member_keys):
                    raise FedTSSError("no such client or member")
                context = ShareContext(terms.chain_id, terms.contract, terms.round, submission.client, member)
                try:
                    sealed = _sealed_share(store, submission, terms, member, max_blob_bytes)
                except BlobTooLarge:
                    shown[member, client] = UNUSABLE
                    continue
                share = shown_share(sealed, evidence, member_keys[member - 1], context, terms)
                if isinstance(share, ShownShare):
                    proof = None if checker.wrap is None or share.proof is None else \
                        checker.wrap.client_proof(sealed.manifest, share.proof)
                    shown[member, client] = checker.check(share.share, member, proof=proof)
                else:
                    shown[member, client] = share
            except StorageError as exc:
                if is_transient(exc):
                    raise  # our store is away: decide at a later tick, not on a guess
            except (FedTSSError, ValueError):
                shown[member, client] = None
    return shown


@dataclass
class PendingChecks:
    """A round whose clients this member checks: what it opened, kept until the verdict.

    ``checks`` is frozen once every member posted or the checks' window closed (no more can be
    posted then); ``complained`` once this member sent its complaints (or had none to send).
    """

    round: int
    opened: object = field(repr=False)  # the aggregator's ShareSum
    length: int
    terms: RoundTerms
    submissions: tuple[Submission, ...] = field(repr=False)
    projections: ShareProjections = field(repr=False)
    checks: dict[int, list[Check | None]] | None = None
    complained: bool = False
    complaints_seen: int = -1
    #: The aggregate share went out over the set the chain fixed before the verdict came.
    posted: bool = False
    #: Each client's norm claims (from its manifest) when the committee checks norms, else None;
    #: with the wrap-around check, combined with its bit claims (:meth:`WrapCheck.claims`).
    claims: dict[int, tuple[int, ...]] | None = None
    #: Clients whose manifest alone excludes them (bit claims that are not zero at 0), and why.
    refused: dict[int, str] = field(default_factory=dict)


def client_claims(manifest: Manifest, wrap: WrapCheck | None) -> tuple[tuple[int, ...], str | None]:
    """A client's claims as the verdict reads them, and why its manifest alone excludes it (None: it does not)."""
    return (manifest.norm_claims, None) if wrap is None else wrap.claims(manifest)


def start_checks(agent: AggregatorAgent, pending: PendingChecks) -> str:
    """Post this member's projections; the note says whether they went on chain in time."""
    try:
        sent = post_checks(agent, pending.round, pending.projections.posted(len(pending.submissions)))
    except ContractRevert as exc:  # too late (the window closed, or the round moved on)
        return f"checks not posted ({exc.name}): this member takes the others' verdict"
    return "checks posted" if sent else "checks were posted before (a restart)"


def window_closed(agent: AggregatorAgent, deadline: int) -> bool:
    """Whether no transaction can land at or before ``deadline`` any more: the block the next one
    would be in is stamped after it (the pending block's timestamp, which also moves on a chain
    that makes no block while idle; the keeper reads deadlines the same way)."""
    return agent.node.contract.chain.pending_time() > deadline


def checks_in(agent: AggregatorAgent, pending: PendingChecks) -> bool:
    """Whether every member's checks are in, or the checks' window closed (then no more can come)."""
    node = agent.node
    if pending.checks is not None:
        return True
    members = len(node.deployment.config.committee)
    checks_deadline, _ = node.contract.check_window(pending.round)
    return (len(posted_checks(agent, pending.round, len(pending.submissions))) >= members
            or window_closed(agent, checks_deadline))


def checks_ready(agent: AggregatorAgent, pending: PendingChecks) -> bool:
    """Whether :func:`step_checks` may get further than last time: the checks are in and, once this
    member complained, a complaint came since or the complaints' window closed."""
    if pending.checks is None or not pending.complained:
        return checks_in(agent, pending)
    _, complaints_deadline = agent.node.contract.check_window(pending.round)
    return (len(posted_complaints(agent, pending.round)) != pending.complaints_seen
            or window_closed(agent, complaints_deadline))


def current_verdict(agent: AggregatorAgent, pending: PendingChecks, *, window_closed: bool) -> RoundVerdict:
    """The verdict from the frozen checks and the complaints posted so far (each one opened and projected)."""
    node = agent.node
    assert pending.checks is not None
    complaints = posted_complaints(agent, pending.round)
    pending.complaints_seen = len(complaints)
    shown = complaint_projections(node.store, {s.index: s for s in pending.submissions}, pending.terms, complaints,
                                  pending.projections, max_blob_bytes=node.max_blob_bytes,
                                  member_keys=[key for _, key in node.contract.committee()])
    return verdict_of(pending, shown, complained=frozenset(complaints), window_closed=window_closed)


def verdict_of(pending: PendingChecks, shown: Mapping[tuple[int, int], Check | str | None], *,
               complained: frozenset[int] = frozenset(), window_closed: bool = False) -> RoundVerdict:
    """:func:`fedtss.validation.round_verdict` on this round's frozen checks, with the complaints
    ``shown`` so far; a committee of n >= 3t - 2 excludes the clients whose norm it could not check."""
    assert pending.checks is not None
    terms = pending.terms
    # Where the members weight updates by the manifests' counts, the shared count coordinate must
    # be exactly 1 (else the round's sample total, and so its mean, would be off): [1, 1].
    shared_count_limit = 1 if terms.samples else terms.quantization.max_samples
    return round_verdict(pending.checks, shown, clients=len(pending.submissions), threshold=terms.t,
                         max_samples=shared_count_limit, complained=complained, window_closed=window_closed,
                         norm_limit=pending.projections.norm_limit(terms.quantization, weighted_by_members=terms.samples),
                         norm_claims=pending.claims,
                         exclude_unchecked_norms=committee_excludes_unchecked_norms(terms.n, terms.t),
                         refused=pending.refused,
                         count_reason="CountOrProofOff" if pending.projections.wrap else "SampleCountOutOfRange")


#: How long a member spends reading the claims of clients it did not open (each manifest, and all
#: of them): they only name members about those clients, and its complaints' window is running.
CLAIMS_FETCH_SECONDS = 1.0
CLAIMS_BUDGET_SECONDS = 3.0


def read_missing_claims(agent: AggregatorAgent, pending: PendingChecks,
                        checks: Mapping[int, Sequence[Check | None]]) -> None:
    """Read the norm claims of the clients this member did not open but t members checked, within
    :data:`CLAIMS_BUDGET_SECONDS`: its verdict names members about them too (it posts over none of
    them either way). A manifest it cannot read in time leaves that client's norm unchecked here;
    our store being away is raised, to try again at a later tick."""
    if pending.claims is None:
        return
    node = agent.node
    started = time.monotonic()
    for submission in pending.submissions:
        index = submission.index
        posted = sum(values[index] is not None for values in checks.values())
        if index in pending.claims or posted < pending.terms.t:
            continue
        if time.monotonic() - started > CLAIMS_BUDGET_SECONDS:
            break
        try:
            manifest = read_client_manifest(node.store, submission, pending.terms, max_blob_bytes=node.max_blob_bytes,
                                            timeout=CLAIMS_FETCH_SECONDS)
        except (FedTSSError, ValueError) as exc:
            if isinstance(exc, StorageError) and is_transient(exc):
                raise
            continue
        pending.claims[index], refusal = client_claims(manifest, pending.projections.wrap)
        if refusal is not None:
            pending.refused[index] = refusal


def step_checks(agent: AggregatorAgent, pending: PendingChecks) -> RoundVerdict | None:
    """Move one round's checks on as far as the chain allows: freeze the checks, complain (once),
    and return the verdict once no complaint can change it (None: wait on)."""
    node = agent.node
    if pending.checks is None:
        checks = posted_checks(agent, pending.round, len(pending.submissions))
        read_missing_claims(agent, pending, checks)  # our store away: raised, the checks freeze at a later look
        pending.checks = checks
    if not pending.complained:
        first = verdict_of(pending, {})
        mine = sorted(c for m, c in first.awaiting if m == agent.member_index)
        if mine:
            try:
                post_complaints(agent, pending.round, [pending.submissions[c] for c in mine], pending.terms,
                                opened=pending.projections.values.__contains__)
            except ContractRevert:  # too late: the verdict names this member, and the round goes on
                pass
        pending.complained = True
        if not first.awaiting:
            return first
    _, complaints_deadline = node.contract.check_window(pending.round)
    closed = window_closed(agent, complaints_deadline)  # before reading: none can land after a closed window
    verdict = current_verdict(agent, pending, window_closed=closed)
    return None if verdict.awaiting else verdict
