"""A committee member's part in the masked mode (:mod:`fedtss.masking`), beside the Shamir mode's.

The round's flow and events are the Shamir mode's (:mod:`agents.aggregator`); what a member
fetches, posts and reconstructs differs:

1. After ``CollectionClosed`` the member opens, from each submitter, its sealed row of the
   client's seed shares and checks that the client's masked vector is in the store and well
   formed (:func:`open_masked_contribution`). What it keeps private and posts the CID of is not a
   share of the sum but its shares of exactly the seeds :func:`fedtss.masking.seeds_to_reveal`
   names for the set it could include (:func:`reveal_seed_shares`).
2. After ``ThresholdReached`` fixed the set, the posted reveals are fetched as aggregate shares
   are; :func:`reconstruct_masked_sum` rebuilds the seeds from them (naming wrong members, as
   the checked reconstruction of the Shamir mode does), sums the included clients' masked
   vectors (:func:`masked_sum_over`, one vector in memory at a time) and removes the masks.

Clients are placed by their position in the contract's allowlist (the order their keys are
registered in), not by the order they submitted in: pairwise seeds exist before anyone submits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fedtss.errors import FormatError
from fedtss.formats import MANIFEST_MAX_BYTES, RoundTerms, VectorKind, check_manifest, decode_field_vector, \
    field_vector_bytes, parse_manifest
from fedtss.masking import (
    LIMBS_PER_SEED,
    SeedRef,
    decode_ring_vector,
    reconstruct_seeds,
    ring_to_field,
    ring_vector_bytes,
    seed_order,
    seeds_to_reveal,
    select_seed_shares,
    unmask_sum,
)
from fedtss.sealing import OVERHEAD, ShareContext, open_share
from fedtss.shamir import Reconstruction
from fedtss.storage import ContentStore

__all__ = [
    "MaskedClient",
    "MaskedOpened",
    "MaskedSum",
    "open_masked_client",
    "masked_sum_over",
    "open_masked_contribution",
    "read_masked_vector",
    "reveal_length",
    "reveal_seed_shares",
    "reconstruct_masked_sum",
]


def open_masked_contribution(store: ContentStore, submission, terms: RoundTerms, *, member_index: int,
                             private_key: bytes, max_blob_bytes: int, clients: int,
                             timeout: float | None = None) -> NDArray[np.uint64]:
    """This member's row of one client's seed shares, after checking its masked vector reads.

    ``clients`` is the allowlist's size: the row holds 5 limbs per seed, the client's self seed
    and one pairwise seed per other allowlisted client. Raises one of the aggregator's
    CLIENT_FAULTS, which exclude this client only.
    """
    return open_masked_client(store, submission, terms, member_index=member_index, private_key=private_key,
                              max_blob_bytes=max_blob_bytes, clients=clients, timeout=timeout).row


@dataclass(frozen=True)
class MaskedClient:
    """One client as a member reads it in step 1: its masked vector and this member's seed row."""

    vector: NDArray[np.uint64] = field(repr=False)
    row: NDArray[np.uint64] = field(repr=False)


def open_masked_client(store: ContentStore, submission, terms: RoundTerms, *, member_index: int,
                       private_key: bytes, max_blob_bytes: int, clients: int,
                       timeout: float | None = None) -> MaskedClient:
    """One client's masked vector and this member's row of its seed shares, both checked
    (:func:`open_masked_contribution`)."""
    manifest = parse_manifest(store.get(submission.manifest_cid, max_bytes=min(MANIFEST_MAX_BYTES, max_blob_bytes),
                                        timeout=timeout))
    check_manifest(manifest, client=submission.client, terms=terms)
    vector = read_masked_vector(store, manifest.masked_cid, terms, max_blob_bytes=max_blob_bytes, timeout=timeout)
    return MaskedClient(vector, _open_seed_row(store, submission, manifest, terms, member_index=member_index,
                                               private_key=private_key, clients=clients, timeout=timeout))


def _open_seed_row(store: ContentStore, submission, manifest, terms: RoundTerms, *, member_index: int,
                   private_key: bytes, clients: int, timeout: float | None) -> NDArray[np.uint64]:
    row_length = LIMBS_PER_SEED * clients
    plain_size = field_vector_bytes(row_length)
    sealed = store.get(manifest.share_cids[member_index - 1], max_bytes=plain_size + OVERHEAD, timeout=timeout)
    context = ShareContext(terms.chain_id, terms.contract, terms.round, submission.client, member_index)
    return decode_field_vector(open_share(sealed, private_key, context), kind=VectorKind.SHARE,
                               max_bytes=plain_size, expected_length=row_length)


def read_masked_vector(store: ContentStore, cid: str | None, terms: RoundTerms, *, max_blob_bytes: int,
                       timeout: float | None = None) -> NDArray[np.uint64]:
    """One client's masked vector, of the round's length and ring, from the store."""
    if cid is None or terms.modulus_bits is None:
        raise FormatError("the manifest names no masked vector, and this round is in the masked mode")
    size = ring_vector_bytes(terms.vector_length, terms.modulus_bits)
    if size > max_blob_bytes:
        raise FormatError(f"a masked vector of {size} bytes exceeds the node's max_blob_bytes {max_blob_bytes}")
    blob = store.get(cid, max_bytes=size, timeout=timeout)
    return decode_ring_vector(blob, bits=terms.modulus_bits, expected_length=terms.vector_length)


@dataclass
class MaskedOpened:
    """The masked mode's step 1 as it goes: each client's seed row by submission index, and the
    sum mod 2^b of the same clients' masked vectors, each added as it is read and then dropped.

    Step 2 unmasks this sum (:meth:`without` takes out the clients the fixed set leaves out),
    so a member reads each masked vector once per round, and holds O(L) of them."""

    bits: int
    length: int
    rows: dict[int, NDArray[np.uint64]] = field(default_factory=dict, repr=False)
    total: NDArray[np.uint64] | None = field(default=None, repr=False)
    #: The clients (submission indices) whose masked vectors are in ``total`` (a sum mod 2^64:
    #: reduce it mod 2^b, :meth:`ring_total`, before reading it as ring words).
    summed: frozenset[int] = frozenset()

    def take(self, index: int, client: MaskedClient) -> None:
        if index in self.summed:
            raise ValueError(f"client {index} is already in the sum")
        if client.vector.shape != (self.length,):
            raise FormatError(f"a masked vector of length {client.vector.size} does not add to {self.length}")
        if self.total is None:
            self.total = np.array(client.vector, dtype=np.uint64, copy=True)
        else:  # in place, wrapping mod 2^64: 2^b divides it, so masking once at the end is the same
            np.add(self.total, client.vector, out=self.total)
        self.rows[index] = client.row
        self.summed = self.summed | {index}

    def ring_total(self) -> NDArray[np.uint64]:
        """The sum mod 2^b."""
        if self.total is None:
            raise FormatError("no masked vector was summed in this round")
        return self.total & np.uint64(_word_mask(self.bits))

    def without(self, vectors: Mapping[int, NDArray[np.uint64]]) -> MaskedOpened:
        """The sum less the masked vectors given (clients summed that the fixed set leaves out)."""
        if self.total is None:
            raise FormatError("no masked vector was summed in this round")
        total = np.array(self.total, dtype=np.uint64, copy=True)
        for index, vector in vectors.items():
            if index not in self.summed:
                raise ValueError(f"client {index} is not in the sum")
            total -= vector
        left = self.summed - set(vectors)
        return MaskedOpened(self.bits, self.length, {i: r for i, r in self.rows.items() if i in left},
                            total & np.uint64(_word_mask(self.bits)), left)


def _word_mask(bits: int) -> int:
    return (1 << bits) - 1


def reveal_length(included_positions: Sequence[int], clients: int) -> int:
    """Field elements in a member's reveal for this included set: 5 per seed to reveal."""
    return LIMBS_PER_SEED * len(seeds_to_reveal(included_positions, range(clients)))


def reveal_seed_shares(rows: Mapping[int, NDArray[np.uint64]], clients: int) -> NDArray[np.uint64]:
    """This member's shares of exactly the seeds to reveal when ``rows``' clients are the set.

    ``rows`` maps allowlist position -> this member's seed row from that client. The order is
    :func:`fedtss.masking.seeds_to_reveal`'s, so every member's reveal lines up.
    """
    everyone = range(clients)
    refs = seeds_to_reveal(rows, everyone)
    parts, start = [], 0
    while start < len(refs):
        client = refs[start].client
        end = start
        while end < len(refs) and refs[end].client == client:
            end += 1
        parts.append(select_seed_shares(rows[client], seed_order(client, everyone), refs[start:end]))
        start = end
    return np.concatenate(parts)


def masked_sum_over(vectors, bits: int) -> NDArray[np.uint64]:
    """The sum mod 2^bits of the masked vectors an iterable yields, holding one at a time."""
    total: NDArray[np.uint64] | None = None
    for vector in vectors:
        if total is None:
            total = np.array(vector, dtype=np.uint64, copy=True)
        else:
            total += vector
    if total is None:
        raise FormatError("no masked vector to sum: the included set is empty")
    if bits < 64:
        total &= np.uint64((1 << bits) - 1)
    return total


@dataclass(frozen=True)
class MaskedSum:
    """The included clients' summed update in field encoding, and which members it rested on."""

    secret: NDArray[np.uint64]
    reconstruction: Reconstruction


def reconstruct_masked_sum(reveals: Mapping[int, NDArray[np.uint64]], masked_sum: NDArray[np.uint64], *,
                           included_positions: Sequence[int], clients: int, threshold: int, bits: int,
                           key: bytes) -> MaskedSum:
    """Rebuild the revealed seeds from members' reveals (checked), unmask the sum, return it in
    the field encoding :func:`fedtss.quantize.dequantize_sum` reads. Pure."""
    refs: list[SeedRef] = seeds_to_reveal(included_positions, range(clients))
    seeds, reconstruction = reconstruct_seeds(reveals, threshold=threshold, key=key)
    ring_sum = unmask_sum(masked_sum, bits=bits, seeds=dict(zip(refs, seeds, strict=True)))
    return MaskedSum(ring_to_field(ring_sum, bits), reconstruction)
