"""The whole client-to-committee arithmetic of one round, without chain or storage.

quantize -> share -> each holder sums its shares -> any t holders reconstruct -> dequantize
must give the sample-weighted average of the clipped float updates, within the stated
quantization error, for 1,000 clients.
"""

from __future__ import annotations

import numpy as np

from fedtss.field import add
from fedtss.quantize import (
    QuantizationConfig,
    clip_update,
    dequantize_sum,
    quantization_error_bound,
    quantize_update,
)
from fedtss.shamir import reconstruct_checked, share_vector

CLIENTS = 1_000
D = 48
N, T = 5, 3


def _simulated_updates(rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    updates = [rng.normal(0.0, 2.0, size=D).astype(np.float32) for _ in range(CLIENTS)]
    samples = [int(s) for s in rng.integers(1, 10_001, size=CLIENTS)]
    return updates, samples


def test_secret_shared_weighted_average_of_1000_clients_matches_float_within_bound() -> None:
    rng = np.random.default_rng(2026)
    config = QuantizationConfig(clip_norm=5.0, fractional_bits=16)
    updates, samples = _simulated_updates(rng)

    holder_sums = np.zeros((N, D + 1), dtype=np.uint64)
    for i, (delta, weight) in enumerate(zip(updates, samples)):
        shares = share_vector(
            quantize_update(delta, weight, config),
            threshold=T,
            holders=N,
            key=i.to_bytes(32, "little"),  # fixed keys keep the test exact to rerun
        )
        for j in range(N):
            holder_sums[j] = add(holder_sums[j], shares[j])

    # Holders 2, 4, 5 reconstruct; the sum of shares is a share of the sum.
    result = reconstruct_checked(
        {j: holder_sums[j - 1] for j in (2, 4, 5)}, threshold=T, key=bytes(32)
    )
    mean, total_samples = dequantize_sum(result.secret, config)

    clipped = np.stack([clip_update(u, config.clip_norm) for u in updates])
    weights = np.array(samples, dtype=np.float64)
    expected = (clipped * weights[:, None]).sum(axis=0) / weights.sum()
    bound = quantization_error_bound(config, clients=CLIENTS, total_samples=sum(samples))

    assert total_samples == sum(samples)
    assert np.max(np.abs(mean - expected)) <= bound
    # Clipping really bit: the updates' norms (~2·sqrt(48) ≈ 14) exceed clip_norm.
    assert np.linalg.norm(updates[0]) > config.clip_norm


def test_a_wrong_holder_sum_is_excluded_and_the_average_is_unchanged() -> None:
    rng = np.random.default_rng(7)
    config = QuantizationConfig(clip_norm=5.0)
    updates, samples = _simulated_updates(rng)
    updates, samples = updates[:20], samples[:20]
    holder_sums = np.zeros((N, D + 1), dtype=np.uint64)
    for i, (delta, weight) in enumerate(zip(updates, samples)):
        shares = share_vector(
            quantize_update(delta, weight, config), threshold=T, holders=N, key=bytes([i]) * 32
        )
        holder_sums = (holder_sums + shares) % np.uint64(2**61 - 1)
    honest = reconstruct_checked(
        {j: holder_sums[j - 1] for j in range(1, N + 1)}, threshold=T, key=bytes(32)
    )
    holder_sums[3, 5] = (holder_sums[3, 5] + np.uint64(1)) % np.uint64(2**61 - 1)
    corrected = reconstruct_checked(
        {j: holder_sums[j - 1] for j in range(1, N + 1)}, threshold=T, key=bytes(32)
    )
    assert corrected.excluded_holders == (4,)
    assert np.array_equal(corrected.secret, honest.secret)
