"""The client agent: on ``RoundOpened``, train locally and submit sealed shares of the update.

    python -m agents.client --config runs/demo/nodes/client-3.toml

One round, top to bottom:

1. :func:`on_round_opened` decides: skip if this account is not allowlisted, already
   submitted (``hasSubmitted``), the round is no longer collecting, or its deadline passed;
2. :func:`train_and_submit` fetches the global model by CID (size-limited, checked against the
   model layout), and the client's task (:mod:`fedtss.task`) trains it on the client's own data,
   seeded per round and client index, and evaluates it there (when the deployment names metrics);
3. :func:`prepare_update` (pure) quantizes the clipped, sample-weighted delta (and the metrics,
   weighted the same way, after it), splits it t-of-n (:func:`fedtss.shamir.share_vector`, fresh
   key), seals share j to member j's X25519 key bound to (chain, contract, round, client, j),
   and writes the manifest;
4. :func:`publish_update` stores the sealed shares and the manifest, and the client sends
   ``submitUpdate(round, manifest CID)``.

The plaintext update and metrics never leave this process: only sealed shares are stored.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.config import ClientSettings, FederationSettings, check_ring_capacity
from agents.learning.fedavg import compute_client_update, round_settings
from agents.runtime import TICK_SECONDS, Handler, Node, Outcome, Skip, StepClock, check_round_capacity, main
from fedtss.chain import RoundOpened, RoundState, transaction_hash
from fedtss.chain.keys import load_masking_key
from fedtss.cid import compute_cid
from fedtss.errors import ConfigError, FormatError, StorageError, TaskError
from fedtss.formats import (
    Manifest,
    ModelLayout,
    VectorKind,
    decode_model,
    encode_field_vector,
    encode_manifest,
    model_layout,
)
from fedtss.masking import PairContext, encode_ring_vector, field_to_ring, mask_update, pairwise_seed, seed_order, share_seeds
from fedtss.field import MODULUS
from fedtss._checks import require_int
from fedtss.quantize import QuantizationConfig, quantize_metrics, quantize_update
from fedtss.randomness import derive_subkey, uniform_field_elements
from fedtss.sealing import ShareContext, seal_proof, seal_share, sealing_key
from fedtss.shamir import share_vector
from fedtss.validation import CheckedLayout, check_tail_length, claim_norm_values, committee_decides_norms, pad_vector
from fedtss.wraparound import (
    WrapBounds,
    bit_check_weights,
    bits_seed,
    claim_bit_check_values,
    client_projections,
    metric_range_bits,
    projection_bits,
    projection_seed,
    projection_words,
    proof_vector,
)
from fedtss.wraparound import warm_up as warm_up_wrap_around_check

if TYPE_CHECKING:
    from agents.learning.task import LoadedTask

__all__ = [
    "HANDLERS",
    "ClientAgent",
    "ClientView",
    "MaskingKeys",
    "PreparedUpdate",
    "TrainAndSubmit",
    "UpdateContext",
    "build_client_agent",
    "fetch_model",
    "on_round_opened",
    "prepare_masked_update",
    "check_tail",
    "prepare_update",
    "quantized_vector",
    "publish_update",
    "train_and_submit",
]


# ------------------------------------------------------------------------ decide


@dataclass(frozen=True)
class ClientView:
    """The chain's answers the client decides on, read just before deciding."""

    allowlisted: bool
    submitted: bool
    state: RoundState


@dataclass(frozen=True)
class TrainAndSubmit:
    """Train on the round's model and submit sealed shares of the update."""

    round: int
    model_cid: str


def on_round_opened(view: ClientView, event: RoundOpened, now: int) -> list[TrainAndSubmit | Skip]:
    round_ = event.round
    if not view.allowlisted:
        return [Skip(round_, "not on the client allowlist")]
    if view.submitted:
        return [Skip(round_, "already submitted in this round")]
    if view.state != RoundState.Collecting:
        return [Skip(round_, f"round is {view.state}, not Collecting")]
    if now > event.collection_deadline:
        return [Skip(round_, "collection deadline passed")]
    return [TrainAndSubmit(round_, event.model_cid)]


HANDLERS: Mapping[type, Handler] = {RoundOpened: on_round_opened}
#: Held while a client trains and evaluates: the task seeds torch's global RNG per round and client,
#: so two clients of one process (agents.pack) training at once would draw from each other's stream.
TRAINING_LOCK = Lock()


# ------------------------------------------------------------------ pure pipeline


@dataclass(frozen=True)
class UpdateContext:
    """Where an update belongs: every sealed share and the manifest are bound to it."""

    chain_id: int
    contract: str
    round: int
    client: str

    def for_member(self, member_index: int) -> ShareContext:
        return ShareContext(self.chain_id, self.contract, self.round, self.client, member_index)


@dataclass(frozen=True)
class PreparedUpdate:
    """What a client stores: n sealed shares (member j's at j - 1) and the manifest naming them;
    in the masked mode also the masked vector, and the sealed shares are of its seeds."""

    sealed_shares: tuple[bytes, ...] = field(repr=False)
    manifest: Manifest
    manifest_blob: bytes = field(repr=False)
    masked_blob: bytes | None = field(default=None, repr=False)
    #: The client's n sealed wrap-around proof shares (member j's at j - 1), with the norm claims.
    sealed_proofs: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class SealedProof:
    """A client's wrap-around proof (:mod:`fedtss.wraparound`): its n sealed proof shares (member
    j's at j - 1), their CIDs and every member's claimed bit-check value."""

    sealed: tuple[bytes, ...] = field(repr=False)
    cids: tuple[str, ...]
    bit_claims: tuple[int, ...]


PROOF_MASKS_LABEL = b"fedtss/client/proof-masks/v1"
PROOF_SHARING_LABEL = b"fedtss/client/proof-sharing/v1"


def prove_update(update: NDArray[np.uint64], *, context: UpdateContext, share_cids: Sequence[str],
                 share_keys: Sequence[bytes], threshold: int, quantization: QuantizationConfig, proof_seed: bytes,
                 metrics: NDArray[np.uint64], bits: NDArray[np.uint64] | None = None,
                 range_bits: NDArray[np.uint64] | None = None) -> SealedProof:
    """Prove the quantized, unweighted ``update`` (its field elements) small in the integers, and
    each of its ``metrics`` (their field elements) within the clip bound, once its shares are
    sealed: ``share_cids`` fix its projections, the bits of each are shared t-of-n (with the bit
    check's t - 1 masks) and member j's share is sealed under ``share_keys[j - 1]``, the key of its
    sealed update share (:func:`share_proof`, then :func:`seal_proof_shares`). ``bits`` and
    ``range_bits`` replace the projections' and the metrics' bits (tests play cheats with them).
    ``metrics`` is required (empty where the deployment names none): a proof without the metrics
    the members expect is one they cannot use.

    Pure: ``proof_seed`` (32 fresh bytes) is the only randomness. ConfigError if the update's
    projections are out of range (its norm is beyond the clip bound) or a metric is beyond it."""
    seed = projection_seed(chain_id=context.chain_id, contract=context.contract, round_=context.round,
                           client=context.client, share_cids=share_cids)
    bounds = WrapBounds.of(quantization, update=int(update.size), metrics=int(np.asarray(metrics).size))
    rows = share_proof(update, seed, bounds, metrics=metrics, threshold=threshold, holders=len(share_keys),
                       proof_seed=proof_seed, bits=bits, range_bits=range_bits)
    return seal_proof_shares(rows, seed, bounds, context=context, share_keys=share_keys, threshold=threshold)


def share_proof(update: NDArray[np.uint64], seed: bytes, bounds: WrapBounds, *, threshold: int, holders: int,
                proof_seed: bytes, metrics: NDArray[np.uint64], bits: NDArray[np.uint64] | None = None,
                range_bits: NDArray[np.uint64] | None = None) -> NDArray[np.uint64]:
    """The n shares of the proof vector (row j - 1 is member j's): the bits of the update's
    projections from ``seed`` and of its ``metrics``' ranges, then the bit check's t - 1 masks,
    all from ``proof_seed``. ``bits`` / ``range_bits`` (a cheat's, in tests) must have the sizes
    of the real ones."""
    if bits is None:
        bits = projection_bits(client_projections(update, projection_words(seed, bounds.update)), bounds)
    if range_bits is None:
        range_bits = metric_range_bits(metrics, bounds)
    if len(bits) != bounds.projection_bit_count or len(range_bits) != bounds.bit_count - bounds.projection_bit_count:
        raise ConfigError(f"{len(bits)} projection bits and {len(range_bits)} range bits for a proof of "
                          f"{bounds.projection_bit_count} and {bounds.bit_count - bounds.projection_bit_count}")
    masks = uniform_field_elements(proof_seed, threshold - 1, label=PROOF_MASKS_LABEL) if threshold > 1 else []
    proof = proof_vector(np.concatenate([bits, range_bits]), [int(mask) for mask in masks])
    return share_vector(proof, threshold=threshold, holders=holders, key=derive_subkey(proof_seed, PROOF_SHARING_LABEL))


def seal_proof_shares(rows: NDArray[np.uint64], seed: bytes, bounds: WrapBounds, *, context: UpdateContext,
                      share_keys: Sequence[bytes], threshold: int) -> SealedProof:
    """Seal proof share j under ``share_keys[j - 1]`` (each key seals one proof: AES-GCM's nonce is
    fixed), name them, and claim each member's bit-check value under the weights their CIDs fix."""
    sealed = tuple(seal_proof(encode_field_vector(rows[j - 1], kind=VectorKind.PROOF_SHARE), key, context.for_member(j))
                   for j, key in enumerate(share_keys, start=1))
    cids = tuple(compute_cid(blob) for blob in sealed)
    claims = claim_bit_check_values(rows, bit_check_weights(bits_seed(seed, cids), bounds), threshold=threshold)
    return SealedProof(sealed, cids, claims)


def quantized_vector(delta: NDArray[np.float32], samples: int, quantization: QuantizationConfig,
                     metrics: Sequence[float] = ()) -> NDArray[np.uint64]:
    """The update (and metrics after it) as the field elements both modes start from."""
    vector = quantize_update(delta, samples, quantization)
    if metrics:
        vector = np.concatenate([vector, quantize_metrics(metrics, samples, quantization)])
    return vector


@dataclass(frozen=True)
class MaskingKeys:
    """What the masked mode needs beyond the Shamir mode's inputs: the ring, this client's
    place in the allowlist, every allowlisted client's registered X25519 key, this client's own
    private key, and the round's fresh self seed."""

    modulus_bits: int
    own_position: int
    client_keys: tuple[bytes, ...] = field(repr=False)
    private_key: bytes = field(repr=False)
    self_seed: bytes = field(repr=False)


def seal_rows(rows: NDArray[np.uint64], context: UpdateContext, member_keys: Sequence[bytes],
              ephemeral_seeds: Sequence[bytes]) -> tuple[bytes, ...]:
    """Row j - 1 of ``rows`` (member j's shares) encoded and sealed to member j, bound to ``context``."""
    if len(ephemeral_seeds) != len(member_keys):
        raise FormatError(f"need one ephemeral seed per member: {len(ephemeral_seeds)} for {len(member_keys)}")
    return tuple(
        seal_share(encode_field_vector(rows[j - 1], kind=VectorKind.SHARE), key, context.for_member(j),
                   ephemeral_seed=seed)
        for j, (key, seed) in enumerate(zip(member_keys, ephemeral_seeds, strict=True), start=1)
    )


def prepare_masked_update(
    delta: NDArray[np.float32],
    samples: int,
    *,
    context: UpdateContext,
    member_keys: Sequence[bytes],
    threshold: int,
    quantization: QuantizationConfig,
    masking: MaskingKeys,
    sharing_key: bytes,
    ephemeral_seeds: Sequence[bytes],
    metrics: Sequence[float] = (),
) -> PreparedUpdate:
    """The masked mode's upload: one masked vector, and member j's shares of the seeds sealed to it.

    The vector is masked with the self seed and one pairwise seed per other allowlisted client
    (:func:`fedtss.masking.mask_update`); the seeds, self first then pairs by allowlist position
    (:func:`fedtss.masking.seed_order`), are shared t-of-n. Pure, as :func:`prepare_update`.
    """
    bits, own = masking.modulus_bits, masking.own_position
    vector = field_to_ring(quantized_vector(delta, samples, quantization, metrics), bits)
    pair_context = PairContext(context.chain_id, context.contract, context.round)
    pairs = {peer: pairwise_seed(masking.private_key, key, own_index=own, peer_index=peer, context=pair_context)
             for peer, key in enumerate(masking.client_keys) if peer != own}
    masked_blob = encode_ring_vector(mask_update(vector, bits=bits, own_index=own, self_seed=masking.self_seed,
                                                 pairwise_seeds=pairs), bits)
    order = seed_order(own, range(len(masking.client_keys)))
    seeds = [masking.self_seed, *(pairs[ref.peer] for ref in order[1:])]
    rows = share_seeds(seeds, threshold=threshold, holders=len(member_keys), key=sharing_key)
    sealed = seal_rows(rows, context, member_keys, ephemeral_seeds)
    manifest = Manifest(
        chain_id=context.chain_id, contract=context.contract, round=context.round, client=context.client,
        n=len(member_keys), t=threshold, vector_length=vector.size, quantization=quantization,
        share_cids=tuple(compute_cid(blob) for blob in sealed),
        masked_cid=compute_cid(masked_blob), modulus_bits=bits,
    )
    return PreparedUpdate(sealed, manifest, encode_manifest(manifest), masked_blob)


def prepare_update(
    delta: NDArray[np.float32],
    samples: int,
    *,
    context: UpdateContext,
    member_keys: Sequence[bytes],
    threshold: int,
    quantization: QuantizationConfig,
    sharing_key: bytes,
    ephemeral_seeds: Sequence[bytes],
    metrics: Sequence[float] = (),
    check_tail: Sequence[int] | None = None,
    proof_seed: bytes | None = None,
) -> PreparedUpdate:
    """Quantize, share t-of-n, seal share j to ``member_keys[j - 1]``, and describe it all.

    ``metrics`` are the client's evaluation of the round's model on its own data, in the order
    of the deployment's metric names: they are shared with the update, so that only their
    sample-weighted mean over the round's clients is ever reconstructed. ``check_tail`` (when the
    committee checks shares, :mod:`fedtss.validation`) is t uniform field elements appended
    last: t - 1 norm masks, so that the members' norm values reveal the update's norm and nothing
    else, and the pad, so that the checks' public projection of the vector is uniform. With it,
    the update and metrics are shared unweighted (count coordinate 1) and the manifest states
    ``samples``, which the members multiply each share by (:mod:`fedtss.quantize`, "Weighted by
    the members"): the norm the checks bound is then the clipped update's, whatever the count.
    With a committee that can check norms, the manifest also claims each member's norm value,
    and the update is proved small in the integers (:func:`prove_update`, from ``proof_seed``).

    Pure: ``sharing_key`` (32 bytes), one 32-byte ``ephemeral_seeds`` entry per member and
    ``proof_seed`` are the only randomness; pass fresh ``os.urandom(32)`` values (tests pin them).
    """
    require_int(samples, "samples", low=1, high=quantization.max_samples, error=ConfigError)
    weighted_by_members = check_tail is not None
    vector = quantized_vector(delta, 1 if weighted_by_members else samples, quantization, metrics)
    if check_tail is not None:
        vector = pad_vector(vector, check_tail[-1], norm_masks=check_tail[:-1])
    shares = share_vector(vector, threshold=threshold, holders=len(member_keys), key=sharing_key)
    claims: tuple[int, ...] = ()
    sealed = seal_rows(shares, context, member_keys, ephemeral_seeds)
    share_cids = tuple(compute_cid(blob) for blob in sealed)
    proof = None
    if check_tail is not None and committee_decides_norms(len(member_keys), threshold):
        layout = CheckedLayout.of(vector.size, metrics=len(metrics), threshold=threshold)
        claims = claim_norm_values(shares, layout)
        if proof_seed is None:
            raise ConfigError("a committee that checks norms checks wraps too: pass proof_seed (32 fresh bytes)")
        share_keys = [sealing_key(key, context.for_member(j), ephemeral_seed=seed)
                      for j, (key, seed) in enumerate(zip(member_keys, ephemeral_seeds, strict=True), start=1)]
        proof = prove_update(vector[: layout.update], context=context, share_cids=share_cids,
                             share_keys=share_keys, threshold=threshold, quantization=quantization,
                             proof_seed=proof_seed, metrics=vector[layout.metrics_slice])
    manifest = Manifest(
        chain_id=context.chain_id,
        contract=context.contract,
        round=context.round,
        client=context.client,
        n=len(member_keys),
        t=threshold,
        vector_length=vector.size,
        quantization=quantization,
        share_cids=share_cids,
        norm_claims=claims,
        samples=samples if weighted_by_members else None,
        proof_cids=() if proof is None else proof.cids,
        bit_claims=() if proof is None else proof.bit_claims,
    )
    return PreparedUpdate(sealed, manifest, encode_manifest(manifest), sealed_proofs=() if proof is None else proof.sealed)


# ---------------------------------------------------------------------- the edge


def fetch_model(node: Node, cid: str, layout: ModelLayout | None) -> dict[str, NDArray[np.float32]]:
    """The model blob ``cid`` from the store, parsed and checked to have the federation's layout
    (any layout when ``layout`` is None: a deployment that fixes none, read by a member)."""
    blob = node.store.get(cid, max_bytes=node.max_blob_bytes)
    tensors = decode_model(blob, max_bytes=node.max_blob_bytes)
    difference = None if layout is None else model_layout(tensors).difference(layout)
    if difference is not None:
        raise FormatError(f"model {cid} does not have the federation's layout: {difference}")
    for name, array in tensors.items():
        if not np.all(np.isfinite(array)):
            raise FormatError(f"model {cid} holds non-finite values in tensor {name}")
    return tensors


#: Blobs a client stores at once. Each put is a round trip to the store (two fsyncs in a local
#: folder, an HTTP ``add`` to an IPFS daemon) that waits on the disk or the daemon, not on us.
STORE_WORKERS = 8


def publish_update(node: Node, prepared: PreparedUpdate) -> str:
    """Store every blob the manifest names (the sealed shares, the masked vector, the sealed proof
    shares: ``Manifest.blob_cids``) side by side, then the manifest; return the manifest's CID. The
    manifest goes last, so whoever finds it finds every blob it names."""
    contents = [*prepared.sealed_shares, *([prepared.masked_blob] if prepared.masked_blob is not None else []),
                *prepared.sealed_proofs]
    blobs = list(zip(prepared.manifest.blob_cids, contents, strict=True))
    with ThreadPoolExecutor(max_workers=max(1, min(STORE_WORKERS, len(blobs))), thread_name_prefix="put") as pool:
        stored = list(pool.map(node.store.put, [blob for _, blob in blobs]))  # the first failure is raised
    for (expected, _), cid in zip(blobs, stored, strict=True):
        if cid != expected:
            raise StorageError(f"the store named a blob {cid}, its CID is {expected}")
    return node.store.put(prepared.manifest_blob)


def evaluate_global_model(agent: ClientAgent, global_tensors: Mapping[str, NDArray[np.float32]]) -> list[float]:
    """This client's metrics of the round's model on its own data, in the deployment's metric order
    (none when the deployment names no metrics)."""
    names = agent.node.deployment.model_metrics
    if not names:
        return []
    metrics = agent.task.evaluate(agent.task.model_from(global_tensors), agent.data)
    missing = sorted(set(names) - set(metrics))
    if missing:
        raise TaskError(f"task {agent.task.name}: evaluate() gave no {', '.join(missing)}; the deployment's "
                        f"clients share {sorted(names)}")
    return [metrics[name] for name in names]


def check_tail(threshold: int, random_bytes: Callable[[int], bytes] = os.urandom) -> list[int]:
    """t fresh uniform field elements: the t - 1 norm masks and the pad (bias < 2^-66 each)."""
    return [int.from_bytes(random_bytes(16), "big") % MODULUS for _ in range(check_tail_length(threshold))]


def train_and_submit(agent: ClientAgent, action: TrainAndSubmit,
                     random_bytes: Callable[[int], bytes] = os.urandom) -> Outcome:
    node, settings, federation = agent.node, agent.settings, agent.federation
    clock = StepClock()
    global_tensors = fetch_model(node, action.model_cid, agent.layout)
    clock.mark("fetch")
    training = round_settings(settings.training, federation_seed=federation.seed, round_number=action.round,
                              client_index=settings.index)
    with TRAINING_LOCK:  # torch's RNG is the process's: packed clients train one at a time
        delta, samples = compute_client_update(agent.task, global_tensors, agent.data, training)
        metrics = evaluate_global_model(agent, global_tensors)
    clock.mark("train")
    committee = node.contract.committee()
    common = dict(
        context=UpdateContext(node.deployment.chain_id, node.deployment.address, action.round, node.address),
        member_keys=[key for _, key in committee],
        threshold=node.contract.threshold(),
        quantization=federation.quantization,
        sharing_key=random_bytes(32),
        ephemeral_seeds=[random_bytes(32) for _ in committee],
        metrics=metrics,
    )
    if agent.modulus_bits is None:
        tail = check_tail(common["threshold"], random_bytes) if agent.check_period else None
        prepared = prepare_update(delta, samples, check_tail=tail, proof_seed=random_bytes(32), **common)
    else:
        prepared = prepare_masked_update(delta, samples, masking=masking_keys(agent, random_bytes(32)), **common)
    clock.mark("protect")
    manifest_cid = publish_update(node, prepared)
    clock.mark("store")
    receipt = node.contract.submit_update(node.account, action.round, manifest_cid)
    clock.mark("send")
    return Outcome(cid=manifest_cid, tx_hash=transaction_hash(receipt),
                   note=f"samples={samples}", steps=clock.steps)


def masking_keys(agent: ClientAgent, self_seed: bytes) -> MaskingKeys:
    """This client's place and keys for the masked mode, as the contract registered them."""
    node = agent.node
    clients = [client.lower() for client in node.contract.clients()]
    if node.address.lower() not in clients:
        raise ConfigError(f"{node.address} is not in the contract's allowlist: it has no masking key there")
    if agent.masking_key is None:
        raise ConfigError(f"{node.config.path}: the deployment aggregates masked updates and this client has no "
                          "masking key: set [client] masking_key_file")
    return MaskingKeys(modulus_bits=agent.modulus_bits, own_position=clients.index(node.address.lower()),
                       client_keys=tuple(bytes(key) for key in node.contract.client_keys()),
                       private_key=agent.masking_key, self_seed=self_seed)


# ------------------------------------------------------------------------ the agent


@dataclass
class ClientAgent:
    """A client process: its node, its task, the model layout, its data and how it trains."""

    node: Node
    settings: ClientSettings
    federation: FederationSettings
    task: LoadedTask
    layout: ModelLayout
    data: Any
    #: The masked mode's ring bits (from the contract) and this client's X25519 masking key;
    #: both None in the Shamir mode.
    modulus_bits: int | None = None
    masking_key: bytes | None = field(default=None, repr=False)
    #: The deployment's ``checkPeriod``: when not 0, the shared vector ends with t fresh field
    #: elements (norm masks and pad, :func:`check_tail`).
    check_period: int = 0
    role: str = "client"
    handlers: Mapping[type, Handler] = field(default_factory=lambda: HANDLERS)

    def observe(self, event: RoundOpened) -> ClientView:
        round_, contract, me = event.round, self.node.contract, self.node.address
        return ClientView(
            allowlisted=contract.call("isClient", me),
            submitted=contract.has_submitted(round_, me),
            state=contract.state(round_),
        )

    def execute(self, action: TrainAndSubmit) -> Outcome:
        return train_and_submit(self, action)

    tick_seconds: ClassVar[float] = TICK_SECONDS

    def is_waiting(self) -> bool:
        return False  # a client acts on RoundOpened alone

    def resume_events(self) -> list[RoundOpened]:
        return []  # the checkpoint stays before a RoundOpened until the update is sent


def build_client_agent(node: Node, environ: Mapping[str, str] | None = None) -> ClientAgent:
    """The client of ``node``'s config: its task loaded, its model's layout checked, its data loaded.

    Every way the task can be unusable (not found, a function missing or raising, another
    layout than the deployment's, data that does not load) stops the client here, before it
    follows a single event, with a one-line error naming the task.
    """
    from agents.learning.task import load_task  # imports PyTorch: a client's, not a member's, cost

    settings = node.config.client
    if settings is None:
        raise ConfigError(f"{node.config.path}: a client needs a [client] table")
    check_round_capacity(node)
    task = load_task(settings.task)
    layout = task.layout()
    fixed = node.deployment.model_layout
    if fixed is not None and (difference := layout.difference(fixed)) is not None:
        raise TaskError(f"task {task.name}: its model() does not have the layout the deployment fixes: "
                        f"{difference}; run the federation's task")
    data = task.load_data(settings.data)
    metrics = node.deployment.model_metrics
    if metrics and (given := sorted(task.evaluate(task.build_model(), data))) != sorted(metrics):
        raise TaskError(f"task {task.name}: its evaluate() gives the metrics {given}; the deployment's clients "
                        f"share {sorted(metrics)}; run the federation's task")
    modulus_bits, masking_key = masked_mode_keys(node, settings, os.environ if environ is None else environ)
    _warm_up_torch()
    if modulus_bits is None and node.contract.check_period():
        warm_up_wrap_around_check(member=False)  # the projections' kernel, compiled at start, not in the first round
    return ClientAgent(node=node, settings=settings, federation=node.config.federation, task=task,
                       layout=fixed or layout, data=data, modulus_bits=modulus_bits, masking_key=masking_key,
                       check_period=node.contract.check_period())


def masked_mode_keys(node: Node, settings: ClientSettings,
                     environ: Mapping[str, str]) -> tuple[int | None, bytes | None]:
    """The ring's bits and this client's masking private key in a masked deployment; (None, None)
    in the Shamir mode.

    Everything that would make the client fail at its first round fails here, at start, in one
    line: no key, a key other than the one the contract registered for this client, or a
    ``[federation]`` whose sums could wrap around the ring.
    """
    aggregation = node.contract.aggregation()
    if not aggregation.is_masked:
        return None, None
    bits = aggregation.modulus_bits
    check_ring_capacity(node.config, bits)
    key = load_masking_key(key_file=settings.masking_key_file, key_env=settings.masking_key_env, environ=environ)
    clients = [client.lower() for client in node.contract.clients()]
    if node.address.lower() not in clients:
        raise ConfigError(f"{node.config.path}: {node.address} is not in the contract's allowlist of clients")
    registered = node.contract.client_keys()[clients.index(node.address.lower())]
    if registered != key.public_key:
        raise ConfigError(f"{node.config.path}: the masking key does not match the one the deployment registered "
                          f"for {node.address}; set [client] masking_key_file to that client's key")
    return bits, key.private_key


def _warm_up_torch() -> None:
    """Import what a task's first ``torch.optim`` step would: ~1.2 s of CPU, better spent at start
    than inside the first round (ten clients pay it at once on two cores)."""
    import torch._dynamo  # noqa: F401


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], role="client", build=build_client_agent))
