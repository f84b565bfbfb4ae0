"""Tests for fedtss.quantize: clipping, exact modular sums, the error bound, capacity refusal."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fedtss.field
from fedtss._checks import FIELD_PRIME
from fedtss.errors import ConfigError, FormatError
from fedtss.quantize import (
    QuantizationConfig,
    check_capacity,
    clip_update,
    dequantize_metrics,
    dequantize_sum,
    quantization_error_bound,
    quantize_metrics,
    quantize_update,
)
from fedtss.shamir import add_weighted_share

P = FIELD_PRIME


def modular_sum(vectors: list[np.ndarray]) -> np.ndarray:
    total = np.zeros_like(vectors[0])
    for vector in vectors:
        total += vector  # both < 2**61, so the sum fits in 64 bits before reducing
        total[total >= P] -= np.uint64(P)
    return total


def exact_weighted_mean(clipped: list[np.ndarray], samples: list[int]) -> list[Fraction]:
    """The weighted average in exact rational arithmetic, as the reference."""
    total = sum(samples)
    return [
        sum(Fraction(float(c[j])) * s for c, s in zip(clipped, samples)) / total
        for j in range(clipped[0].size)
    ]


def test_local_prime_matches_the_field_module() -> None:
    assert FIELD_PRIME == fedtss.field.MODULUS == 2**61 - 1


def test_thousand_clients_average_is_within_the_stated_error_bound() -> None:
    config = QuantizationConfig(clip_norm=1.0, fractional_bits=16, max_clients=1000,
                                max_samples=10_000)
    rng = np.random.default_rng(3)
    clients, d = 1000, 24
    samples = [int(s) for s in rng.integers(1, 10_001, size=clients)]
    samples[:10] = [10_000] * 10  # the largest weights the issue names
    deltas = [(rng.standard_normal(d) * rng.uniform(0.01, 3.0)).astype(np.float32)
              for _ in range(clients)]
    quantized = [quantize_update(delta, s, config) for delta, s in zip(deltas, samples)]

    mean, total_samples = dequantize_sum(modular_sum(quantized), config)

    assert total_samples == sum(samples)
    reference = exact_weighted_mean([clip_update(x, 1.0) for x in deltas], samples)
    bound = quantization_error_bound(config, clients=clients, total_samples=total_samples)
    errors = [abs(Fraction(float(m)) - r) for m, r in zip(mean, reference)]
    assert max(errors) <= Fraction(bound)


def test_error_bound_holds_with_one_sample_per_client_where_it_is_loosest() -> None:
    config = QuantizationConfig(clip_norm=2.0, fractional_bits=8)
    rng = np.random.default_rng(4)
    deltas = [rng.uniform(-1, 1, size=16).astype(np.float32) for _ in range(1000)]
    quantized = [quantize_update(delta, 1, config) for delta in deltas]

    mean, total_samples = dequantize_sum(modular_sum(quantized), config)

    reference = exact_weighted_mean([clip_update(x, 2.0) for x in deltas], [1] * 1000)
    bound = quantization_error_bound(config, clients=1000, total_samples=total_samples)
    assert bound == pytest.approx(2.0**-9, rel=1e-6)
    assert max(abs(Fraction(float(m)) - r) for m, r in zip(mean, reference)) <= Fraction(bound)


def test_sum_at_full_capacity_does_not_wrap_around() -> None:
    config = QuantizationConfig(clip_norm=1.0, fractional_bits=16)
    extreme = np.array([1.0, 0.0], dtype=np.float32)  # norm 1: one coordinate at +clip
    negative = -extreme
    for vector, sign in ((extreme, 1.0), (negative, -1.0)):
        quantized = quantize_update(vector, config.max_samples, config)
        mean, total_samples = dequantize_sum(modular_sum([quantized] * config.max_clients),
                                             config)
        assert total_samples == config.max_clients * config.max_samples
        assert mean.tolist() == [sign, 0.0]


@pytest.mark.parametrize(("samples", "bits", "clients"), [(1, 60, 1), (7, 57, 1), (10_000, 16, 1000)])
def test_largest_accepted_clip_norm_fits_even_when_every_rounding_goes_up(
    samples: int, bits: int, clients: int
) -> None:
    # Worst |q_j| of one client: three float64 roundings (clip / norm, times delta_j, times
    # samples * 2^f) of relative 2^-53 each, then rint's 1/2.
    low, high = 0.0, float(2**62)
    for _ in range(200):
        middle = (low + high) / 2
        try:
            QuantizationConfig(middle, fractional_bits=bits, max_clients=clients,
                               max_samples=samples)
            low = middle
        except ConfigError:
            high = middle
    worst = Fraction(low) * samples * 2**bits * (1 + Fraction(1, 2**53)) ** 3 + Fraction(1, 2)
    assert clients * worst <= (P - 1) // 2
    # Rounded unweighted, then multiplied by the count at the members: the rounding is paid per sample.
    weighted_by_members = (Fraction(low) * 2**bits * (1 + Fraction(1, 2**53)) ** 2 + Fraction(1, 2)) * samples
    assert clients * weighted_by_members <= (P - 1) // 2


def test_updates_weighted_by_the_members_give_the_weighted_mean_within_their_bound() -> None:
    """Each client rounds its unweighted update and the members multiply it by the count: the
    rounding error is multiplied too, so the bound is 2^-(f+1) whatever the counts."""
    config = QuantizationConfig(clip_norm=2.0, fractional_bits=8, max_samples=500)
    rng = np.random.default_rng(7)
    deltas = [rng.uniform(-1, 1, size=16).astype(np.float32) for _ in range(50)]
    counts = [int(c) for c in rng.integers(1, 500, size=50)]
    total = np.zeros(17, dtype=np.uint64)
    for delta, count in zip(deltas, counts):
        add_weighted_share(total, quantize_update(delta, 1, config), count)  # a "share" with t = 1

    mean, total_samples = dequantize_sum(total, config)

    assert total_samples == sum(counts)
    reference = exact_weighted_mean([clip_update(x, 2.0) for x in deltas], counts)
    bound = quantization_error_bound(config, clients=50, total_samples=total_samples, weighted_by_members=True)
    assert bound == pytest.approx(2.0**-9, rel=1e-6)
    assert max(abs(Fraction(float(m)) - r) for m, r in zip(mean, reference)) <= Fraction(bound)


def test_sample_count_travels_as_the_last_coordinate() -> None:
    config = QuantizationConfig(clip_norm=1.0)
    quantized = quantize_update(np.zeros(5, dtype=np.float32), 1234, config)
    assert quantized.dtype == np.uint64 and quantized.shape == (6,)
    assert int(quantized[-1]) == 1234


def test_negative_coordinates_are_encoded_mod_p_and_decode_as_negative() -> None:
    config = QuantizationConfig(clip_norm=10.0, fractional_bits=4)
    quantized = quantize_update(np.array([-0.5, 0.25], dtype=np.float32), 2, config)
    assert quantized.tolist() == [P - 16, 8, 2]
    mean, samples = dequantize_sum(quantized, config)
    assert mean.tolist() == [-0.5, 0.25] and samples == 2


def test_clipping_bounds_the_norm_and_keeps_small_updates() -> None:
    big = np.array([3.0, 4.0], dtype=np.float32)
    small = np.array([0.3, 0.4], dtype=np.float32)
    clipped = clip_update(big, 1.0)
    assert clipped.dtype == np.float64
    assert np.linalg.norm(clipped) == pytest.approx(1.0, rel=1e-15)
    assert clipped.tolist() == pytest.approx([0.6, 0.8], rel=1e-15)
    assert clip_update(small, 1.0).tolist() == small.astype(np.float64).tolist()


@settings(max_examples=60, deadline=None)
@given(
    delta=arrays(np.float32, st.integers(1, 40),
                 elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=False)),
    samples=st.integers(1, 10_000),
    bits=st.integers(0, 24),
)
def test_one_client_round_trip_is_within_the_bound(delta, samples, bits) -> None:
    config = QuantizationConfig(clip_norm=5.0, fractional_bits=bits)
    mean, total = dequantize_sum(quantize_update(delta, samples, config), config)
    bound = quantization_error_bound(config, clients=1, total_samples=samples)
    assert total == samples
    assert np.all(np.abs(mean - clip_update(delta, 5.0)) <= bound)


def test_overflowing_configuration_is_refused_naming_limit_and_parameters() -> None:
    with pytest.raises(ConfigError) as refused:
        QuantizationConfig(clip_norm=1.0, fractional_bits=42)
    message = str(refused.value)
    assert "(p-1)/2" in message
    for parameter in ("fractional_bits", "clip_norm", "max_clients", "max_samples"):
        assert f"lower {parameter} to <=" in message


def test_suggested_fractional_bits_is_the_largest_that_fits() -> None:
    with pytest.raises(ConfigError, match=r"lower fractional_bits to <= (\d+)") as refused:
        QuantizationConfig(clip_norm=100.0, fractional_bits=40, max_clients=1000)
    suggested = int(re.search(r"fractional_bits to <= (\d+)", str(refused.value)).group(1))
    QuantizationConfig(clip_norm=100.0, fractional_bits=suggested, max_clients=1000)
    with pytest.raises(ConfigError):
        QuantizationConfig(clip_norm=100.0, fractional_bits=suggested + 1, max_clients=1000)


def test_issue_scale_configuration_is_accepted_with_room_to_spare() -> None:
    config = QuantizationConfig(clip_norm=1000.0, fractional_bits=16, max_clients=1000,
                                max_samples=10_000)
    check_capacity(config)  # does not raise
    with pytest.raises(ConfigError, match="clip_norm"):
        QuantizationConfig(clip_norm=2e6, fractional_bits=16)


@pytest.mark.parametrize(
    ("field", "value"),
    [("clip_norm", 0.0), ("clip_norm", float("nan")), ("clip_norm", float("inf")),
     ("clip_norm", "1"), ("clip_norm", 10**400), ("fractional_bits", -1), ("fractional_bits", 1.5),
     ("max_clients", 0), ("max_samples", True)],
)
def test_invalid_config_values_are_refused_by_name(field: str, value: object) -> None:
    arguments: dict[str, object] = {"clip_norm": 1.0, field: value}
    with pytest.raises(ConfigError, match=field):
        QuantizationConfig(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("samples", [0, -1, 10_001, True, 2.0])
def test_samples_outside_one_to_max_samples_are_rejected(samples: object) -> None:
    config = QuantizationConfig(clip_norm=1.0)
    with pytest.raises(ConfigError, match="samples"):
        quantize_update(np.ones(3, dtype=np.float32), samples, config)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delta", "reason"),
    [(np.array([1.0, np.nan], dtype=np.float32), "NaN"),
     (np.array([np.inf], dtype=np.float32), "NaN or infinite"),
     (np.ones(3, dtype=np.float64), "float32"),
     (np.ones(3, dtype=np.int32), "float32"),
     (np.ones((2, 2), dtype=np.float32), "1-D"),
     (np.ones(0, dtype=np.float32), "non-empty"),
     ([1.0, 2.0], "numpy array")],
)
def test_malformed_updates_are_rejected_with_the_reason(delta: object, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        quantize_update(delta, 1, QuantizationConfig(clip_norm=1.0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("total", "reason"),
    [(np.array([1, P], dtype=np.uint64), ">= p"),
     (np.array([1, 0], dtype=np.uint64), "sample count 0"),
     (np.array([1, 10**7 + 1], dtype=np.uint64), "sample count"),
     (np.array([5], dtype=np.uint64), "length"),
     (np.array([1, 2], dtype=np.int64), "uint64")],
)
def test_malformed_aggregates_are_rejected(total: np.ndarray, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        dequantize_sum(total, QuantizationConfig(clip_norm=1.0))


@pytest.mark.parametrize("parameter", ["clip_norm", "max_clients", "max_samples"])
def test_each_suggested_value_fits(parameter: str) -> None:
    arguments: dict[str, object] = {"clip_norm": 50.0, "fractional_bits": 32}
    with pytest.raises(ConfigError) as refused:
        QuantizationConfig(**arguments)  # type: ignore[arg-type]
    found = re.search(rf"lower {parameter} to <= ([0-9.e+-]+)", str(refused.value))
    assert found is not None
    value = float(found.group(1)) if parameter == "clip_norm" else int(found.group(1))
    QuantizationConfig(**{**arguments, parameter: value})  # type: ignore[arg-type]


# -- federated metrics ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.lists(st.floats(-50, 50, allow_nan=False), min_size=2, max_size=2), min_size=1, max_size=20),
    samples=st.lists(st.integers(1, 10_000), min_size=20, max_size=20),
)
def test_summed_metrics_give_the_sample_weighted_mean_of_the_clipped_values_within_the_bound(
    values: list[list[float]], samples: list[int]
) -> None:
    config = QuantizationConfig(clip_norm=10.0)
    counts = samples[: len(values)]
    total = modular_sum([quantize_metrics(v, n, config) for v, n in zip(values, counts)])
    means = dequantize_metrics(total, sum(counts), config)
    bound = quantization_error_bound(config, clients=len(values), total_samples=sum(counts))
    for k, mean in enumerate(means):
        exact = sum(Fraction(min(max(v[k], -10.0), 10.0)) * n for v, n in zip(values, counts)) / sum(counts)
        assert abs(Fraction(mean) - exact) <= Fraction(bound)


def test_a_metric_beyond_clip_norm_is_clipped_so_the_field_sum_cannot_wrap() -> None:
    config = QuantizationConfig(clip_norm=10.0, max_clients=2, max_samples=10)
    encoded = quantize_metrics([1e300, -1e300], 10, config)
    assert dequantize_metrics(encoded, 10, config) == (10.0, -10.0)


@pytest.mark.parametrize("values", [[float("nan")], [float("inf")], [1.0, float("-inf")]])
def test_a_non_finite_metric_is_refused(values: list[float]) -> None:
    with pytest.raises(FormatError, match="finite"):
        quantize_metrics(values, 3, QuantizationConfig(clip_norm=10.0))
