"""Per-client share consistency from public projections (fedtss.validation): what it catches, and
that what it publishes tells t - 1 members nothing about the update (with the control that must
fail: the same check without the pad)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fedtss import field as gf
from fedtss._reed_solomon import evaluate, interpolate
from fedtss.errors import ConfigError, FormatError
from fedtss.field import MODULUS
from fedtss.shamir import share_vector
from fedtss.validation import (
    NOT_OPENED,
    challenge_vector,
    check_client,
    decode_checks,
    encode_checks,
    pad_vector,
    project_share,
    round_challenge,
    round_verdict,
)

N, T = 5, 3


def _projections(shares: np.ndarray, rho: np.ndarray) -> dict[int, int]:
    return {j: project_share(shares[j - 1], rho) for j in range(1, shares.shape[0] + 1)}


def _dealt(update: np.ndarray, pad: int, key: bytes, holders: int = N, threshold: int = T) -> np.ndarray:
    return share_vector(pad_vector(update, pad), threshold=threshold, holders=holders, key=key)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, MODULUS - 1), min_size=1, max_size=40), st.binary(min_size=32, max_size=32))
def test_an_honest_clients_projections_decode_with_no_member_disagreeing(values, challenge) -> None:
    update = np.array(values, dtype=np.uint64)
    shares = _dealt(update, int.from_bytes(os.urandom(7), "little"), os.urandom(32))
    verdict = check_client(_projections(shares, challenge_vector(challenge, update.size + 1)), threshold=T)
    assert verdict.consistent and verdict.disagreeing == () and verdict.checked


@pytest.mark.parametrize("member", range(1, N + 1))
def test_one_share_off_the_polynomial_shows_at_exactly_that_member(member: int) -> None:
    update = np.arange(30, dtype=np.uint64)
    shares = _dealt(update, 12345, os.urandom(32))
    shares[member - 1, 7] = gf.add(shares[member - 1, 7:8], np.ones(1, dtype=np.uint64))[0]
    verdict = check_client(_projections(shares, challenge_vector(os.urandom(32), 31)), threshold=T)
    assert verdict.consistent and verdict.disagreeing == (member,)


def test_shares_off_the_polynomial_at_more_members_than_can_be_corrected_are_inconsistent() -> None:
    shares = _dealt(np.arange(30, dtype=np.uint64), 9, os.urandom(32))
    shares[0, 3] ^= np.uint64(1)
    shares[1, 4] ^= np.uint64(1)  # two errors: n = 5, t = 3 corrects one
    verdict = check_client(_projections(shares, challenge_vector(os.urandom(32), 31)), threshold=T)
    assert not verdict.consistent


def test_with_exactly_t_projections_nothing_is_checked() -> None:
    shares = _dealt(np.arange(4, dtype=np.uint64), 1, os.urandom(32))
    shares[0, 0] ^= np.uint64(1)
    rho = challenge_vector(os.urandom(32), 5)
    verdict = check_client({j: project_share(shares[j - 1], rho) for j in (1, 2, 3)}, threshold=T)
    assert verdict == verdict.__class__(consistent=True, disagreeing=(), checked=False)


def _g_at_zero(update: np.ndarray, pad: int, rho: np.ndarray) -> int:
    """g(0) = <rho, s>, s the update then the pad (0 for the check run without one): the one value
    the posted projections add to what t - 1 members hold (the test below shows it)."""
    return project_share(pad_vector(update, pad), rho)


def test_the_projections_add_only_g_at_zero_to_what_t_minus_1_members_hold() -> None:
    update = np.arange(20, dtype=np.uint64)
    shares = _dealt(update, 777, os.urandom(32))
    rho = challenge_vector(os.urandom(32), 21)
    posted = _projections(shares, rho)
    coalition = (1, 2)  # t - 1 members
    known = {j: project_share(shares[j - 1], rho) for j in coalition}
    known[0] = _g_at_zero(update, 777, rho)
    # Every other member's projection follows by interpolation from these t values: nothing more.
    polynomial = interpolate(list(known), list(known.values()))
    assert all(evaluate(polynomial, j) == posted[j] for j in range(1, N + 1))


def _leak_pvalue(padded: bool) -> float:
    """p-value that g(0) has the same distribution for two different updates, over fresh pads."""
    rho = challenge_vector(b"\x07" * 32, 11)
    samples = []
    for update in (np.zeros(10, dtype=np.uint64), np.full(10, 5, dtype=np.uint64)):
        values = [_g_at_zero(update, int.from_bytes(os.urandom(8), "little") % MODULUS if padded else 0, rho)
                  for _ in range(400)]
        samples.append(np.bincount(np.array(values, dtype=np.uint64) >> np.uint64(57), minlength=16))
    return stats.chi2_contingency(np.array(samples) + 1).pvalue


def test_what_the_check_publishes_is_independent_of_the_update_with_the_pad() -> None:
    assert _leak_pvalue(padded=True) > 1e-4


def test_control_without_the_pad_what_it_publishes_tells_two_updates_apart() -> None:
    assert _leak_pvalue(padded=False) < 1e-10


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        challenge_vector(b"short", 3)
    with pytest.raises(ConfigError, match="pad must be a field element"):
        pad_vector(np.zeros(2, dtype=np.uint64), MODULUS)
    with pytest.raises(FormatError, match="cannot be projected"):
        project_share(np.zeros(3, dtype=np.uint64), challenge_vector(b"\x01" * 32, 4))
    with pytest.raises(ConfigError, match="at least t"):
        check_client({1: 0, 2: 0}, threshold=3)
    with pytest.raises(FormatError, match="not a field element"):
        check_client({1: 0, 2: 0, 3: MODULUS}, threshold=3)


def test_the_challenge_vector_is_deterministic_and_has_no_zero() -> None:
    rho = challenge_vector(b"\x02" * 32, 1000)
    assert np.array_equal(rho, challenge_vector(b"\x02" * 32, 1000)) and np.all(rho > 0) and np.all(rho < MODULUS)


# ----------------------------------------------------------- a round's verdict from posted checks

RHO = challenge_vector(bytes(32), 32)
MAX_SAMPLES = 1000
COUNT = 30  # the sample count's coordinate in the dealt vectors (update 0..29, count, pad)


def _check(share: np.ndarray, rho: np.ndarray = RHO) -> tuple[int, int]:
    return project_share(share, rho), int(share[COUNT])


def _deal(client: int, *, samples: int = 40, n: int = N, t: int = T) -> np.ndarray:
    update = np.concatenate([np.arange(30, dtype=np.uint64) * (client + 1), np.array([samples], dtype=np.uint64)])
    return share_vector(pad_vector(update, 5 + client), threshold=t, holders=n, key=os.urandom(32))


#: n = 6, t = 3: with one member off, the other five (2t - 1) are enough to show it safely.
VN, VT = 6, 3


def _round_checks(clients: int = 3, *, corrupt: tuple[int, int] | None = None, lie: tuple[int, int] | None = None,
                  samples: dict[int, int] | None = None, n: int = VN, t: int = VT) -> tuple[dict[int, list], np.ndarray]:
    """Member -> posted checks for ``clients`` clients; ``corrupt`` = (client, member): that client
    sealed that member a share off its polynomial; ``lie`` = (member, client): that member posts a
    false projection. Also returns the dealt shares (client, member, coordinate)."""
    samples = samples or {}
    dealt = np.stack([_deal(c, samples=samples.get(c, 40), n=n, t=t) for c in range(clients)])
    if corrupt is not None:
        client, member = corrupt
        dealt[client, member - 1, 0] = gf.add(dealt[client, member - 1, 0:1], np.ones(1, dtype=np.uint64))[0]
    checks = {j: [_check(dealt[c, j - 1]) for c in range(clients)] for j in range(1, n + 1)}
    if lie is not None:
        member, client = lie
        projection, count = checks[member][client]
        checks[member][client] = ((projection + 1) % MODULUS, count)
    return checks, dealt


def _verdict(checks, complaints=None, *, threshold: int = VT, **options):
    return round_verdict(checks, complaints or {}, clients=len(next(iter(checks.values()))), threshold=threshold,
                         max_samples=MAX_SAMPLES, **options)


def test_a_round_of_honest_clients_and_members_excludes_and_names_nobody_and_waits_for_nothing() -> None:
    checks, _ = _round_checks(samples={0: 1, 1: MAX_SAMPLES})
    verdict = _verdict(checks)
    assert verdict.excluded_clients == {} and verdict.wrong_members == {} and not verdict.awaiting
    assert verdict.sample_counts == {0: 1, 1: MAX_SAMPLES, 2: 40}


def test_a_client_that_corrupts_one_members_share_is_excluded_once_that_member_shows_its_share() -> None:
    checks, dealt = _round_checks(corrupt=(1, 4))
    before = _verdict(checks)
    assert before.awaiting == {(4, 1)} and before.excluded_clients == {}
    shown = {(4, 1): _check(dealt[1, 3])}  # what member 4's revealed key opens
    after = _verdict(checks, shown, complained=frozenset({4}))
    assert after.excluded_clients == {1: "InconsistentShares"} and after.wrong_members == {}


def test_a_member_that_posts_a_false_check_is_named_and_the_client_kept() -> None:
    checks, dealt = _round_checks(lie=(2, 0))
    silent = _verdict(checks, window_closed=True)
    assert silent.wrong_members == {2: (0,)} and silent.excluded_clients == {}
    # complaining does not help a liar: its real share projects elsewhere than it posted
    complained = _verdict(checks, {(2, 0): _check(dealt[0, 1])}, complained=frozenset({2}))
    assert complained.wrong_members == {2: (0,)} and complained.excluded_clients == {}
    # nor does a key that opens nothing
    assert _verdict(checks, {(2, 0): None}, complained=frozenset({2})).wrong_members == {2: (0,)}


def test_a_member_that_posts_a_false_count_share_is_named_and_the_count_still_read() -> None:
    checks, _ = _round_checks()
    projection, count = checks[3][1]
    checks[3][1] = (projection, (count + 1) % MODULUS)
    verdict = _verdict(checks)
    assert verdict.wrong_members == {3: (1,)} and verdict.excluded_clients == {}
    assert verdict.sample_counts[1] == 40


@pytest.mark.parametrize("samples", [0, MAX_SAMPLES + 1, MODULUS - 5], ids=["zero", "above-max", "negative"])
def test_a_client_whose_shared_sample_count_is_out_of_range_is_excluded(samples: int) -> None:
    checks, _ = _round_checks(samples={2: samples})
    verdict = _verdict(checks)
    assert verdict.excluded_clients == {2: "SampleCountOutOfRange"} and verdict.wrong_members == {}


def test_a_complaint_from_a_member_that_agreed_changes_nothing() -> None:
    checks, dealt = _round_checks()
    verdict = _verdict(checks, {(3, 2): _check(dealt[2, 2])}, complained=frozenset({3}))
    assert verdict.excluded_clients == {} and verdict.wrong_members == {}


def test_a_client_inconsistent_at_more_members_than_can_be_corrected_is_excluded_at_once() -> None:
    checks, _ = _round_checks()
    for member, shift in ((1, 1), (2, 7)):
        projection, count = checks[member][2]
        checks[member][2] = ((projection + shift) % MODULUS, count)
    verdict = _verdict(checks)
    assert verdict.excluded_clients == {2: "InconsistentShares"} and not verdict.awaiting


def test_clients_with_t_or_fewer_checks_are_unchecked_not_excluded_but_their_count_is_still_read() -> None:
    checks, _ = _round_checks(samples={1: 0})
    for member in (4, 5, 6):
        checks[member][0] = None  # three members could not open client 0: three checks, t = 3
        checks[member][1] = None  # nor client 1, whose shared count is 0
    verdict = _verdict(checks)
    assert verdict.unchecked == (0, 1)
    assert verdict.excluded_clients == {1: "SampleCountOutOfRange"} and verdict.sample_counts[0] == 40


def test_with_t_above_half_of_n_a_member_off_a_clients_polynomial_is_disputed_not_asked_to_complain() -> None:
    """n = 5, t = 3: four other checks are fewer than 2t - 1 = 5, so showing the share could give
    two colluders the third one of an honest client: nobody is named, the client is kept."""
    checks, _ = _round_checks(corrupt=(1, 4), n=5, t=3)
    verdict = _verdict(checks, threshold=3, window_closed=True)
    assert not verdict.awaiting and verdict.disputed == {4: (1,)}
    assert verdict.excluded_clients == {} and verdict.wrong_members == {}


@pytest.mark.parametrize(("n", "t"), [(5, 3), (6, 3), (7, 3), (10, 6), (9, 4), (4, 2)])
def test_colluders_steering_the_decoded_polynomial_never_get_an_honest_member_asked_to_show_its_share(
        n: int, t: int) -> None:
    """The class behind the rule: t - 1 colluders post projections on a polynomial of their
    choosing that passes through as many honest members' as it can. Whatever they frame, no
    honest member is ever awaited (asked to complain) or named about an honest client: a
    complaint would hand them a t-th share. (Beyond the correction bound they can still make
    the projections undecodable and the client excluded: availability, not privacy.)"""
    clients = 2
    checks, dealt = _round_checks(clients, n=n, t=t)
    liars = list(range(1, t))  # t - 1 colluders: members 1..t-1
    honest = [j for j in range(1, n + 1) if j not in liars]
    for client in range(clients):
        # a polynomial of degree < t through as many honest points as it can (k), one honest point
        # shifted (it frames the rest), and liars' points to make up t
        k = min(t - 1, len(honest) - 1)
        anchors = honest[:k] + [honest[k]] + liars[: t - k - 1]
        values = ([checks[j][client][0] for j in honest[:k]] + [(checks[honest[k]][client][0] + 1) % MODULUS]
                  + [12345 + j for j in liars[: t - k - 1]])
        steered = interpolate(anchors, values)
        for j in liars:
            checks[j][client] = (evaluate(steered, j), checks[j][client][1])
    verdict = _verdict(checks, threshold=t, window_closed=True)
    asked = {m for m, _ in verdict.awaiting} | set(verdict.wrong_members)
    assert not asked & set(honest), (n, t, verdict)
    assert not set(verdict.disputed) - set(honest) - set(liars)


def test_posted_checks_round_trip_with_not_opened_and_reject_the_wrong_length() -> None:
    values = [(0, 1), (MODULUS - 1, 2), None, (12345, MODULUS - 1)]
    blob = encode_checks(values)
    assert len(blob) == 64 and blob[32:48] == NOT_OPENED.to_bytes(8, "big") * 2
    assert decode_checks(blob, 4) == values
    assert decode_checks(MODULUS.to_bytes(8, "big") + bytes(8), 1) == [None]  # outside the field: not a check
    with pytest.raises(FormatError, match="expected 48"):
        decode_checks(blob, 3)
    with pytest.raises(FormatError, match="field elements"):
        encode_checks([(MODULUS, 0)])


def test_the_round_challenge_depends_on_every_input() -> None:
    base = dict(chain_id=1, contract="0x" + "11" * 20, round_=3, block_hash=bytes(32))
    challenge = round_challenge(**base)
    assert len(challenge) == 32
    for name, value in [("chain_id", 2), ("contract", "0x" + "12" * 20), ("round_", 4), ("block_hash", b"\1" * 32)]:
        assert round_challenge(**{**base, name: value}) != challenge
    with pytest.raises(FormatError, match="32 bytes"):
        round_challenge(**{**base, "block_hash": bytes(31)})


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_within_the_correction_bound_bad_clients_are_excluded_and_lying_members_named(data) -> None:
    """The class: any mix of clients sealing bad shares or out-of-range sample counts and members
    posting false projections or count shares, with at most floor((n - t) / 2) bad points per
    client. Honest members complain with their real share; lying ones complain with theirs or not
    at all. Then exactly the bad clients are excluded and exactly the members that lied about a
    kept client are named (about an excluded client, nothing hangs on a member's word)."""
    n, t, clients = 7, 3, 4  # n >= 2t: one member off leaves the 2t - 1 others a complaint needs
    bound = (n - t) // 2
    liars = set(data.draw(st.lists(st.integers(1, n), max_size=bound, unique=True)))
    counts = [data.draw(st.sampled_from([0, 1, 17, MAX_SAMPLES, MAX_SAMPLES + 1, MODULUS - 1])) for _ in range(clients)]
    dealt = np.stack([_deal(c, samples=counts[c], n=n, t=t) for c in range(clients)])
    corrupted: dict[int, set[int]] = {}
    for client in range(clients):
        room = bound - len(liars)
        honest = sorted(set(range(1, n + 1)) - liars)
        for member in data.draw(st.lists(st.sampled_from(honest), max_size=room, unique=True)) if room else []:
            coordinate = data.draw(st.sampled_from([0, COUNT, COUNT + 1]))  # update, count or pad
            dealt[client, member - 1, coordinate] = gf.add(dealt[client, member - 1, coordinate:coordinate + 1],
                                                           np.ones(1, dtype=np.uint64))[0]
            corrupted.setdefault(client, set()).add(member)
    real = {(j, c): _check(dealt[c, j - 1]) for j in range(1, n + 1) for c in range(clients)}
    lies = {(j, c): data.draw(st.sampled_from(["projection", "count"])) for j in liars for c in range(clients)
            if data.draw(st.booleans())}
    checks = {j: [real[j, c] if (j, c) not in lies else
                  ((real[j, c][0] + 1) % MODULUS, real[j, c][1]) if lies[j, c] == "projection" else
                  (real[j, c][0], (real[j, c][1] + 1) % MODULUS) for c in range(clients)] for j in range(1, n + 1)}
    verdict_of = dict(clients=clients, threshold=t, max_samples=MAX_SAMPLES)
    first = round_verdict(checks, {}, **verdict_of)
    complaints = {(j, c): real[j, c] for j, c in first.awaiting if j not in liars}
    complaints |= {(j, c): real[j, c] for j, c in first.awaiting if j in liars and data.draw(st.booleans())}
    verdict = round_verdict(checks, complaints, complained=frozenset(j for j, _ in complaints), window_closed=True,
                            **verdict_of)
    out_of_range = {c for c in range(clients) if not 1 <= counts[c] <= MAX_SAMPLES}
    assert set(verdict.excluded_clients) == set(corrupted) | out_of_range
    by_count = {c for c, why in verdict.excluded_clients.items() if why == "SampleCountOutOfRange"}
    assert out_of_range - set(corrupted) <= by_count <= out_of_range  # a client both is out for either
    excluded = set(corrupted) | out_of_range
    assert set(verdict.wrong_members) == {j for j, c in lies if c not in excluded}
