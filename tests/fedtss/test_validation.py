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
from fedtss.quantize import QuantizationConfig, quantize_update
from fedtss.shamir import share_vector
from fedtss.validation import (
    NOT_OPENED,
    CheckedLayout,
    challenge_vector,
    check_client,
    check_share,
    decode_checks,
    committee_decides_norms,
    committee_excludes_unchecked_norms,
    encode_checks,
    largest_norm_checked_samples,
    claim_norm_values,
    is_norm_checked,
    norm_share,
    pad_vector,
    project_share,
    read_norm_claims,
    round_challenge,
    round_verdict,
    UNUSABLE,
    squared_norm_limit,
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
    with pytest.raises(ConfigError, match="pad and the norm masks must be field elements"):
        pad_vector(np.zeros(2, dtype=np.uint64), MODULUS)
    with pytest.raises(FormatError, match="cannot be projected"):
        project_share(np.zeros(3, dtype=np.uint64), challenge_vector(b"\x01" * 32, 4))
    with pytest.raises(ConfigError, match="at least t"):
        check_client({1: 0, 2: 0}, threshold=3)
    with pytest.raises(FormatError, match="not a field element"):
        check_client({1: 0, 2: 0, 3: MODULUS}, threshold=3)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5000), st.integers(0, MODULUS - 1), st.integers(0, 2**32))
def test_checking_a_share_while_adding_it_gives_the_same_check_and_the_weighted_sum(length: int, weight: int,
                                                                                   seed: int) -> None:
    """The member's one pass (the checks riding on its sum) against the two separate ones."""
    rng = np.random.default_rng(seed)
    layout = CheckedLayout(update=length, metrics=0, threshold=T)
    share = rng.integers(0, MODULUS, size=layout.length, dtype=np.uint64)
    total = rng.integers(0, MODULUS, size=layout.length, dtype=np.uint64)
    rho = challenge_vector(rng.bytes(32), layout.length)
    expected = gf.add(total, gf.mul_scalar(share, weight))
    check = check_share(share, rho, layout, 2, add_to=total, weight=weight)
    assert check == check_share(share, rho, layout, 2) and np.array_equal(total, expected)


def test_a_share_outside_the_field_is_refused_and_leaves_the_sum_it_was_added_to_as_it_was() -> None:
    layout = CheckedLayout(update=6000, metrics=0, threshold=T)
    rng = np.random.default_rng(3)
    share = rng.integers(0, MODULUS, size=layout.length, dtype=np.uint64)
    share[4321] = np.uint64(2**64 - 1)  # its 61 low bits are p itself, 0 mod p
    share[17], share[5000] = np.uint64(2**61 + 5), np.uint64(2**63 + 7)  # and these are not 0 mod p
    rho = challenge_vector(b"\x05" * 32, layout.length)
    for weight in (987, 0, MODULUS - 1):
        total = rng.integers(0, MODULUS, size=layout.length, dtype=np.uint64)
        before = total.copy()
        with pytest.raises(FormatError, match="outside the field"):
            check_share(share, rho, layout, 1, add_to=total, weight=weight)
        assert np.array_equal(total, before)
    for weight in (2.0, True, -1, MODULUS):  # the caller's mistake, never a client's fault
        with pytest.raises(ConfigError, match="weight"):
            check_share(share, rho, layout, 1, add_to=total, weight=weight)


def test_the_challenge_vector_is_deterministic_and_has_no_zero() -> None:
    rho = challenge_vector(b"\x02" * 32, 1000)
    assert np.array_equal(rho, challenge_vector(b"\x02" * 32, 1000)) and np.all(rho > 0) and np.all(rho < MODULUS)


# ----------------------------------------------------------- a round's verdict from posted checks

MAX_SAMPLES = 1000
COUNT = 30  # the sample count's coordinate in the dealt vectors (update 0..29, count, t - 1 norm masks, pad)


def _layout(t: int) -> CheckedLayout:
    return CheckedLayout(update=COUNT, metrics=0, threshold=t)


def _rho(t: int) -> np.ndarray:
    return challenge_vector(bytes(32), _layout(t).length)


def _check(share: np.ndarray, member: int, t: int) -> tuple[int, int, int]:
    """What member ``member`` posts about a client whose share (of a t-of-n dealing) is ``share``."""
    return project_share(share, _rho(t)), int(share[COUNT]), norm_share(share, _layout(t), member)


def _deal(client: int, *, samples: int = 40, n: int = N, t: int = T, scale: int = 1) -> np.ndarray:
    update = np.concatenate([np.arange(30, dtype=np.uint64) * (client + 1) * scale,
                             np.array([samples], dtype=np.uint64)])
    masks = [int.from_bytes(os.urandom(16), "big") % MODULUS for _ in range(t - 1)]
    return share_vector(pad_vector(update, 5 + client, norm_masks=masks), threshold=t, holders=n, key=os.urandom(32))


def _squared_norm(client: int, scale: int = 1) -> int:
    return sum((k * (client + 1) * scale) ** 2 for k in range(30))


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
    checks = {j: [_check(dealt[c, j - 1], j, t) for c in range(clients)] for j in range(1, n + 1)}
    if lie is not None:
        member, client = lie
        projection, count, norm = checks[member][client]
        checks[member][client] = ((projection + 1) % MODULUS, count, norm)
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
    shown = {(4, 1): _check(dealt[1, 3], 4, VT)}  # what member 4's revealed key opens
    after = _verdict(checks, shown, complained=frozenset({4}))
    assert after.excluded_clients == {1: "InconsistentShares"} and after.wrong_members == {}


def test_a_member_that_posts_a_false_check_is_named_and_the_client_kept() -> None:
    checks, dealt = _round_checks(lie=(2, 0))
    silent = _verdict(checks, window_closed=True)
    assert silent.wrong_members == {2: (0,)} and silent.excluded_clients == {}
    # complaining does not help a liar: its real share projects elsewhere than it posted
    complained = _verdict(checks, {(2, 0): _check(dealt[0, 1], 2, VT)}, complained=frozenset({2}))
    assert complained.wrong_members == {2: (0,)} and complained.excluded_clients == {}
    # nor does a key that opens nothing
    assert _verdict(checks, {(2, 0): None}, complained=frozenset({2})).wrong_members == {2: (0,)}


def test_a_member_that_posts_a_false_count_share_is_named_and_the_count_still_read() -> None:
    checks, _ = _round_checks()
    projection, count, norm = checks[3][1]
    checks[3][1] = (projection, (count + 1) % MODULUS, norm)
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
    verdict = _verdict(checks, {(3, 2): _check(dealt[2, 2], 3, VT)}, complained=frozenset({3}))
    assert verdict.excluded_clients == {} and verdict.wrong_members == {}


def test_a_client_inconsistent_at_more_members_than_can_be_corrected_is_excluded_at_once() -> None:
    checks, _ = _round_checks()
    for member, shift in ((1, 1), (2, 7)):
        projection, count, norm = checks[member][2]
        checks[member][2] = ((projection + shift) % MODULUS, count, norm)
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
            checks[j][client] = (evaluate(steered, j), *checks[j][client][1:])
    verdict = _verdict(checks, threshold=t, window_closed=True)
    asked = {m for m, _ in verdict.awaiting} | set(verdict.wrong_members)
    assert not asked & set(honest), (n, t, verdict)
    assert not set(verdict.disputed) - set(honest) - set(liars)


def test_posted_checks_round_trip_with_not_opened_and_reject_the_wrong_length() -> None:
    values = [(0, 1, 2), (MODULUS - 1, 2, 0), None, (12345, MODULUS - 1, 7)]
    blob = encode_checks(values)
    assert len(blob) == 96 and blob[48:72] == NOT_OPENED.to_bytes(8, "big") * 3
    assert decode_checks(blob, 4) == values
    for at in range(3):  # any element outside the field: not a check
        assert decode_checks(bytes(8 * at) + MODULUS.to_bytes(8, "big") + bytes(16 - 8 * at), 1) == [None]
    with pytest.raises(FormatError, match="expected 72"):
        decode_checks(blob, 3)
    with pytest.raises(FormatError, match="field elements"):
        encode_checks([(MODULUS, 0, 0)])
    with pytest.raises(FormatError, match="three field elements"):
        encode_checks([(1, 2)])


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
            coordinate = data.draw(st.sampled_from([0, COUNT, COUNT + 1, COUNT + t - 1, COUNT + t]))  # update, count, mask, pad
            dealt[client, member - 1, coordinate] = gf.add(dealt[client, member - 1, coordinate:coordinate + 1],
                                                           np.ones(1, dtype=np.uint64))[0]
            corrupted.setdefault(client, set()).add(member)
    real = {(j, c): _check(dealt[c, j - 1], j, t) for j in range(1, n + 1) for c in range(clients)}
    lies = {(j, c): data.draw(st.sampled_from(["projection", "count"])) for j in liars for c in range(clients)
            if data.draw(st.booleans())}
    checks = {j: [real[j, c] if (j, c) not in lies else
                  ((real[j, c][0] + 1) % MODULUS, *real[j, c][1:]) if lies[j, c] == "projection" else
                  (real[j, c][0], (real[j, c][1] + 1) % MODULUS, real[j, c][2]) for c in range(clients)]
              for j in range(1, n + 1)}
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


# ------------------------------------------------------------------ the norm check on shares

def _norm_limit(squared_norm: int):
    return lambda samples: squared_norm


class _NormRound:
    """``clients`` clients dealt t-of-n (client c scaled by ``scale[c]``), every member's posted
    checks, and each client's honest claims (what :func:`claim_norm_values` gives it)."""

    def __init__(self, n: int, t: int, *, clients: int = 2, scale: dict[int, int] | None = None) -> None:
        scale = scale or {}
        self.n, self.t = n, t
        self.dealt = np.stack([_deal(c, n=n, t=t, scale=scale.get(c, 1)) for c in range(clients)])
        self.checks = {j: [_check(self.dealt[c, j - 1], j, t) for c in range(clients)] for j in range(1, n + 1)}
        self.claims = {c: claim_norm_values(self.dealt[c], _layout(t)) for c in range(clients)}

    def shown(self, member: int, client: int) -> tuple[int, int, int]:
        """What member ``member``'s revealed key opens about ``client``: its real share's check."""
        return _check(self.dealt[client, member - 1], member, self.t)

    def lie_about_norm(self, member: int, client: int, value: int) -> None:
        projection, count, _ = self.checks[member][client]
        self.checks[member][client] = (projection, count, value % MODULUS)

    def verdict(self, limit: int, complaints=None, **options):
        return _verdict(self.checks, complaints, threshold=self.t, norm_limit=_norm_limit(limit),
                        norm_claims=self.claims, **options)


def _understating_claims(round_: _NormRound, client: int, *, honest_at: list[int], claimed: int) -> tuple[int, ...]:
    """Claims of degree < 2t - 1 through the real values at ``honest_at`` (at most 2t - 2 members)
    and ``claimed`` at 0: the best a client can do to pass off a larger norm as ``claimed``."""
    real = round_.claims[client]
    polynomial = interpolate([0, *honest_at], [claimed, *(real[j - 1] for j in honest_at)])
    return tuple(evaluate(polynomial, j) for j in range(1, round_.n + 1))


def _dispute(round_: _NormRound, client: int, members: list[int]) -> None:
    """Move one norm-mask coordinate of each of ``members``' shares so that its value equals the
    client's claim for it (the dispute dodge): its projection is then off the polynomial."""
    masks_start = _layout(round_.t).masks_start
    for j in members:  # nu_j holds j * U_1(j): moving U_1(j) by shift / j moves nu_j by shift
        shift = (round_.claims[client][j - 1] - round_.checks[j][client][2]) % MODULUS
        round_.dealt[client, j - 1, masks_start] = (int(round_.dealt[client, j - 1, masks_start])
                                                    + shift * pow(j, -1, MODULUS)) % MODULUS
        round_.checks[j][client] = round_.shown(j, client)


def _settled(round_: _NormRound, limit: int, **options):
    """The verdict once every member asked to show its share has (honest members do; one that
    posted "not opened" because the share never reached it has nothing to show)."""
    first = round_.verdict(limit, **options)
    complaints = {(j, c): round_.shown(j, c) for j, c in first.awaiting if round_.checks[j][c] is not None}
    return round_.verdict(limit, complaints, complained=frozenset(j for j, _ in complaints), window_closed=True,
                          **options)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=30), st.integers(2, 5), st.integers(0, 3),
       st.integers(0, 2))
def test_a_clients_claims_lie_on_one_polynomial_whose_value_at_zero_is_the_squared_norm_of_the_update_alone(
        values, t, extra, metrics) -> None:
    """Whatever the update, t and n >= 2t - 1, and however many metrics: the count, the metrics,
    the masks and the pad stay out, the update's coordinates (negatives as p - x) are in."""
    n = 2 * t - 1 + extra
    layout = CheckedLayout(update=len(values), metrics=metrics, threshold=t)
    field_values = [v % MODULUS for v in values] + [999] + [3] * metrics  # the count (999), then metrics
    masks = [int.from_bytes(os.urandom(16), "big") % MODULUS for _ in range(t - 1)]
    vector = pad_vector(np.array(field_values, dtype=np.uint64), 77, norm_masks=masks)
    shares = share_vector(vector, threshold=t, holders=n, key=os.urandom(32))
    claims = claim_norm_values(shares, layout)
    assert claims == tuple(norm_share(shares[j - 1], layout, j) for j in range(1, n + 1))
    assert read_norm_claims(claims, t) == sum(v * v for v in values) % MODULUS


def test_claims_that_are_not_n_field_elements_on_one_polynomial_read_as_none() -> None:
    claims = _NormRound(6, 3).claims[0]
    assert read_norm_claims(claims, 3) is not None
    assert read_norm_claims(claims[:4], 3) is None  # fewer than 2t - 1: nothing to check them by
    assert read_norm_claims((*claims[:5], (claims[5] + 1) % MODULUS), 3) is None
    assert read_norm_claims((*claims[:5], MODULUS), 3) is None


@pytest.mark.parametrize(("n", "t"), [(3, 2), (5, 3), (7, 3), (7, 4)])
def test_a_client_claiming_a_norm_above_the_clip_bound_is_excluded_by_any_committee_of_2t_minus_1(
        n: int, t: int) -> None:
    """Its own claims give it away: no share shown, nobody named, nothing to wait for."""
    round_ = _NormRound(n, t, scale={1: 1000})
    verdict = round_.verdict(_squared_norm(1) * 2)
    assert verdict.excluded_clients == {1: "NormOutOfRange"} and verdict.wrong_members == {}
    assert not verdict.awaiting and verdict.norm_unchecked == ()
    assert verdict.squared_norms == {0: _squared_norm(0), 1: _squared_norm(1, 1000)}


def test_a_client_with_a_wrapped_or_unclipped_update_lands_above_any_small_limit() -> None:
    """Coordinates of 10^6 (the issue's attack) at 2^16 fractional bits square past p: the
    claimed value is ||q||^2 mod p, far above what clipping allows."""
    round_ = _NormRound(5, 3, scale={0: 10**6 * 2**16})
    assert round_.verdict(_squared_norm(1)).excluded_clients == {0: "NormOutOfRange"}


@pytest.mark.parametrize(("n", "t"), [(3, 2), (5, 3), (7, 3), (11, 6)])
def test_a_client_that_understates_its_norm_is_excluded_once_a_member_whose_value_differs_shows_its_share(
        n: int, t: int) -> None:
    """The claims go through the real values at 2t - 2 members and a small norm at 0: every other
    member's value differs from its claim, it must complain, and its revealed share convicts the client."""
    round_ = _NormRound(n, t, scale={1: 1000})
    round_.claims[1] = _understating_claims(round_, 1, honest_at=list(range(1, 2 * t - 1)), claimed=_squared_norm(1))
    limit = _squared_norm(1) * 2
    before = round_.verdict(limit)
    assert before.excluded_clients == {} and before.awaiting == {(j, 1) for j in range(2 * t - 1, n + 1)}
    after = round_.verdict(limit, {(n, 1): round_.shown(n, 1)}, complained=frozenset({n}))
    assert after.excluded_clients == {1: "NormClaimMismatch"} and after.wrong_members == {}


def test_a_disputed_member_whose_value_contradicts_the_claim_must_show_its_share_and_then_convicts_the_client(
        ) -> None:
    """n = 5, t = 3: four agreeing projections are too few to name member 4 safely (disputed), but
    its norm value differs from the client's own claim, which only a cheating client causes."""
    round_ = _NormRound(5, 3)
    round_.dealt[0, 3, 2] = (int(round_.dealt[0, 3, 2]) + 1) % MODULUS  # member 4's share, off the polynomial
    round_.checks[4][0] = round_.shown(4, 0)
    limit = _squared_norm(1) * 2
    assert round_.verdict(limit).awaiting == {(4, 0)} and round_.verdict(limit).disputed == {}
    after = round_.verdict(limit, {(4, 0): round_.shown(4, 0)}, complained=frozenset({4}))
    assert after.excluded_clients == {0: "InconsistentShares"} and after.wrong_members == {}
    assert round_.verdict(limit, window_closed=True).wrong_members == {4: (0,)}
    # a share off the polynomial in its pad alone (no norm value holds it) contradicts no claim:
    # nobody can tell who is wrong, so the member stays disputed
    round_ = _NormRound(5, 3)
    round_.dealt[0, 3, -1] = (int(round_.dealt[0, 3, -1]) + 1) % MODULUS
    round_.checks[4][0] = round_.shown(4, 0)
    padded = round_.verdict(limit, window_closed=True)
    assert padded.disputed == {4: (0,)} and padded.wrong_members == {} and padded.excluded_clients == {}
    assert padded.norm_unchecked == (0,)  # four consistent shares are fewer than 2t - 1


def test_claims_off_one_polynomial_exclude_the_client_and_name_nobody() -> None:
    round_ = _NormRound(6, 3)
    round_.claims[0] = (*round_.claims[0][:5], (round_.claims[0][5] + 1) % MODULUS)
    verdict = round_.verdict(_squared_norm(1) * 2)
    assert verdict.excluded_clients == {0: "InvalidNormClaims"} and verdict.wrong_members == {}
    assert not verdict.awaiting


def test_a_member_that_posts_a_false_norm_value_about_an_honest_client_is_named_and_the_client_kept() -> None:
    round_ = _NormRound(5, 3)
    round_.lie_about_norm(3, 0, round_.claims[0][2] + 10**12)
    limit = _squared_norm(1) * 2
    assert round_.verdict(limit).awaiting == {(3, 0)}  # it may still show its share
    silent = round_.verdict(limit, window_closed=True)
    assert silent.wrong_members == {3: (0,)} and silent.excluded_clients == {}
    # showing its share does not help: the share matches the client's claim, not the posted value
    shown = round_.verdict(limit, {(3, 0): round_.shown(3, 0)}, complained=frozenset({3}))
    assert shown.wrong_members == {3: (0,)} and shown.excluded_clients == {}
    assert shown.squared_norms[0] == _squared_norm(0)


def test_a_member_that_shows_a_share_whose_value_matched_the_claim_is_named() -> None:
    round_ = _NormRound(5, 3)
    verdict = round_.verdict(_squared_norm(1) * 2, {(2, 1): round_.shown(2, 1)}, complained=frozenset({2}))
    assert verdict.wrong_members == {2: (1,)} and verdict.excluded_clients == {}


def test_a_norm_limit_beyond_the_field_leaves_the_norm_unchecked_and_says_so() -> None:
    round_ = _NormRound(4, 2, scale={1: 1000})
    verdict = round_.verdict(MODULUS)
    assert verdict.excluded_clients == {} and verdict.norm_unchecked == (0, 1)
    assert verdict.norm_limit_beyond_field == (0, 1)
    assert round_.verdict(MODULUS - 1).norm_limit_beyond_field == ()


def test_a_member_whose_value_differs_from_the_claim_is_named_even_where_the_limit_is_beyond_the_field() -> None:
    round_ = _NormRound(5, 2)
    round_.lie_about_norm(4, 1, round_.claims[1][3] + 1)
    verdict = round_.verdict(MODULUS, window_closed=True)
    assert verdict.wrong_members == {4: (1,)} and verdict.excluded_clients == {} and verdict.norm_unchecked == (0, 1)


def test_a_client_with_fewer_than_t_checks_is_norm_unchecked_not_silently_kept() -> None:
    round_ = _NormRound(4, 2)
    for member in (2, 3, 4):
        round_.checks[member][0] = None
    verdict = round_.verdict(_squared_norm(1))
    assert verdict.unchecked == (0,) and verdict.norm_unchecked == (0,) and verdict.norm_limit_beyond_field == ()


def test_with_a_member_down_the_demos_committee_cannot_check_a_norm_but_still_excludes_a_claim_above_it() -> None:
    """n = 5, t = 3, member 5 silent: four matching values are fewer than 2t - 1."""
    round_ = _NormRound(5, 3, scale={1: 1000})
    del round_.checks[5]
    verdict = round_.verdict(_squared_norm(1) * 2)
    assert verdict.excluded_clients == {1: "NormOutOfRange"} and verdict.norm_unchecked == (0,)


def test_a_client_whose_claims_a_member_could_not_read_is_norm_unchecked_there() -> None:
    round_ = _NormRound(5, 3)
    del round_.claims[1]
    verdict = round_.verdict(_squared_norm(1) * 2)
    assert verdict.excluded_clients == {} and verdict.norm_unchecked == (1,) and 1 not in verdict.squared_norms


def test_the_largest_norm_checked_sample_count_is_the_last_whose_limit_is_inside_the_field() -> None:
    config = QuantizationConfig(clip_norm=10.0, max_clients=10, max_samples=10_000)
    largest = largest_norm_checked_samples(config)
    assert squared_norm_limit(config, largest, update=1) < MODULUS <= squared_norm_limit(config, largest + 1, update=1)
    assert largest_norm_checked_samples(QuantizationConfig(clip_norm=10.0, max_clients=10, max_samples=100)) == 100
    assert committee_decides_norms(5, 3) and not committee_decides_norms(4, 3) and committee_decides_norms(3, 2)
    assert is_norm_checked(5, 3) and not is_norm_checked(4, 3)


@pytest.mark.parametrize(("n", "t"), [(3, 2), (4, 2), (5, 3), (7, 3), (8, 3), (10, 4), (11, 6), (16, 6)])
@pytest.mark.parametrize("complain", [False, True])
def test_colluders_posting_any_norm_values_never_get_an_honest_client_excluded_or_an_honest_member_named(
        n: int, t: int, complain: bool) -> None:
    """The class: t - 1 colluders post whatever norm values they like about an honest client, and
    show their shares or not. Whatever (n, t), the client is kept and no honest member named."""
    round_ = _NormRound(n, t, clients=1)
    liars = list(range(1, t))
    for j in liars:
        round_.lie_about_norm(j, 0, int.from_bytes(os.urandom(8), "big"))
    complaints = {(j, 0): round_.shown(j, 0) for j in liars} if complain else {}
    verdict = round_.verdict(_squared_norm(0) * 2, complaints, complained=frozenset(liars) if complain else frozenset(),
                             window_closed=True)
    assert verdict.excluded_clients == {}, (n, t, verdict)
    assert set(verdict.wrong_members) <= set(liars)


@pytest.mark.parametrize(("n", "t", "colluders"), [(n, t, c) for n, t in [(3, 2), (5, 3), (6, 3), (7, 3), (8, 3),
                                                                           (10, 4), (11, 6), (16, 6)]
                                                     for c in range(t)])
def test_a_client_understating_its_norm_with_c_silent_colluders_is_caught_exactly_when_n_minus_c_is_2t_minus_1(
        n: int, t: int, colluders: int) -> None:
    """The class for the claims: the client steers its claims through the real values of as many
    honest members as it can (2t - 2), its colluders post values equal to the claims and never
    complain, every honest member whose value differs complains. It is excluded exactly when at
    least 2t - 1 members are honest, the bound the README states."""
    round_ = _NormRound(n, t, clients=1, scale={0: 1000})
    colluding = list(range(1, colluders + 1))
    honest = [j for j in range(1, n + 1) if j not in colluding]
    round_.claims[0] = _understating_claims(round_, 0, honest_at=honest[: 2 * t - 2], claimed=_squared_norm(0))
    for j in colluding:
        round_.lie_about_norm(j, 0, round_.claims[0][j - 1])
    verdict = _settled(round_, _squared_norm(0) * 2)
    caught = n - colluders >= 2 * t - 1
    assert (verdict.excluded_clients == {0: "NormClaimMismatch"}) == caught, (n, t, colluders, verdict)
    assert not set(verdict.wrong_members) & set(honest)


def _solve(rows: list[list[int]], rhs: list[int]) -> list[int]:
    """Gaussian elimination over GF(p) of a square system."""
    size = len(rows)
    a = [row[:] + [value] for row, value in zip(rows, rhs)]
    for col in range(size):
        pivot = next(r for r in range(col, size) if a[r][col] % MODULUS)
        a[col], a[pivot] = a[pivot], a[col]
        inverse = pow(a[col][col], MODULUS - 2, MODULUS)
        a[col] = [v * inverse % MODULUS for v in a[col]]
        for r in range(size):
            if r != col and a[r][col]:
                factor = a[r][col]
                a[r] = [(v - factor * w) % MODULUS for v, w in zip(a[r], a[col])]
    return [a[r][size] for r in range(size)]


def _through(points: dict[int, int], at_zero: int, x: int) -> int:
    """The polynomial of degree < t through the coalition's points and (0, at_zero), at x."""
    return evaluate(interpolate([0, *points], [at_zero, *points.values()]), x)


def _second_dealing_matches(t: int, n: int, *, masked: bool) -> bool:
    """Whether t - 1 colluders' shares plus every member's posted norm value fit a second update of
    the same norm (the update's coordinates permuted) as well as the true one: solve for masks."""
    update = [3, -7, 11, 2, -5]
    other = update[::-1]  # the same norm, another vector
    d = len(update)
    layout = CheckedLayout(update=d, metrics=0, threshold=t)
    masks = [int.from_bytes(os.urandom(16), "big") % MODULUS for _ in range(t - 1)] if masked else [0] * (t - 1)
    vector = pad_vector(np.array([v % MODULUS for v in update] + [40], dtype=np.uint64), 9, norm_masks=masks)
    shares = share_vector(vector, threshold=t, holders=n, key=os.urandom(32))
    posted = {j: norm_share(shares[j - 1], layout, j) for j in range(1, n + 1)}
    coalition = range(1, t)

    def other_share(j: int, new_masks: list[int]) -> np.ndarray:
        """Member j's share of ``other`` dealt to agree with the coalition's shares (its only freedom: the masks)."""
        values = [v % MODULUS for v in other] + [40] + new_masks + [9]
        return np.array([_through({c: int(shares[c - 1, k]) for c in coalition}, values[k], j)
                         for k in range(len(values))], dtype=np.uint64)

    if not masked:
        return all(norm_share(other_share(j, [0] * (t - 1)), layout, j) == posted[j] for j in range(1, n + 1))
    # norm_share is affine in the masks: find its coefficients at t - 1 outside members, then solve
    outside = list(range(t, n + 1))
    base = {j: norm_share(other_share(j, [0] * (t - 1)), layout, j) for j in outside}
    unit = {(j, i): (norm_share(other_share(j, [int(i == k) for k in range(t - 1)]), layout, j) - base[j]) % MODULUS
            for j in outside for i in range(t - 1)}
    pick = outside[: t - 1]
    solved = _solve([[unit[j, i] for i in range(t - 1)] for j in pick], [(posted[j] - base[j]) % MODULUS for j in pick])
    return all(norm_share(other_share(j, solved), layout, j) == posted[j] for j in range(1, n + 1))


@pytest.mark.parametrize(("n", "t"), [(5, 3), (7, 4), (10, 6)])
def test_posted_norm_values_and_t_minus_1_shares_fit_any_update_of_the_same_norm(n: int, t: int) -> None:
    """What the norm values reveal to t - 1 colluders is the norm alone: for another update of the
    same norm there are masks (of a dealing that gives the coalition the very same shares) under
    which every member posts the very same value."""
    assert _second_dealing_matches(t, n, masked=True)


@pytest.mark.parametrize(("n", "t"), [(5, 3), (10, 6)])
def test_control_without_the_norm_masks_the_posted_values_tell_two_updates_of_the_same_norm_apart(
        n: int, t: int) -> None:
    assert not _second_dealing_matches(t, n, masked=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=50), st.integers(1, 3000),
       st.sampled_from([0.5, 1.0, 10.0]))
def test_every_honestly_clipped_update_is_within_its_squared_norm_limit(values, samples, clip) -> None:
    """The limit covers clipping's float rounding and the rounding of each coordinate: an honest
    client is never excluded for its norm."""
    config = QuantizationConfig(clip_norm=clip, max_clients=10, max_samples=3000)
    update = quantize_update(np.array(values, dtype=np.float32), samples, config)[: len(values)]
    signed = [int(v) - MODULUS if v > MODULUS // 2 else int(v) for v in update]
    assert sum(v * v for v in signed) <= squared_norm_limit(config, samples, update=len(values))


def test_control_were_the_sum_of_the_norm_masks_public_one_member_would_learn_a_function_of_one_clients_update(
        ) -> None:
    """Why members zero the tail of the aggregate shares they post (agents.aggregator): t = 2, and
    member 1 alone, with the posted norm values and the masks' sum over two clients, recovers
    <q_A, f_A(1) - f_B(1)>, a linear function of client A's own update that the aggregate does
    not give. (tests/agents/test_client_checks.py checks that the posted shares' tails are zero.)"""
    t, n, d = 2, 4, 5
    rng = np.random.default_rng(1)
    q_a, q_b = ([int(x) for x in rng.integers(-1000, 1000, d)] for _ in range(2))
    layout = CheckedLayout(update=d, metrics=0, threshold=t)

    def deal(q: list[int]) -> np.ndarray:
        masks = [int.from_bytes(os.urandom(16), "big") % MODULUS for _ in range(t - 1)]
        vector = pad_vector(np.array([x % MODULUS for x in q] + [7], dtype=np.uint64), 5, norm_masks=masks)
        return share_vector(vector, threshold=t, holders=n, key=os.urandom(32))

    shares_a, shares_b = deal(q_a), deal(q_b)
    coefficients = []
    for shares in (shares_a, shares_b):
        values = {j: norm_share(shares[j - 1], layout, j) for j in range(1, n + 1)}
        coefficients.append(interpolate(list(values), list(values.values())))
    # the masks' sum as the aggregate would give it: the summed shares at members 1 and 2, at 0
    at_1, at_2 = (int(shares_a[j, layout.masks_start]) + int(shares_b[j, layout.masks_start]) for j in (0, 1))
    mask_sum = (2 * at_1 - at_2) % MODULUS
    # t = 2: the norm polynomial's j^1 coefficient is 2 <q_c, f_c(1)> - 2 ||q_c||^2 + u_c
    learned = sum(c[1] + 2 * c[0] for c in coefficients) - mask_sum
    learned = learned * pow(2, -1, MODULUS) % MODULUS
    own_a, own_b = ([int(x) for x in shares[0, :d]] for shares in (shares_a, shares_b))
    aggregate = [a + b for a, b in zip(q_a, q_b)]
    about_a = (learned - sum(s * f for s, f in zip(aggregate, own_b))) % MODULUS
    assert about_a == sum(a * (x - y) for a, x, y in zip(q_a, own_a, own_b)) % MODULUS


@pytest.mark.parametrize(("n", "t"), [(3, 2), (4, 2), (5, 3), (6, 3), (7, 3), (7, 4), (8, 4), (9, 4), (11, 6),
                                    (14, 6), (15, 6)])
def test_a_lone_client_over_its_limit_is_never_kept_as_norm_checked_and_dodges_by_dispute_exactly_when_n_is_at_most_3t_minus_4(
        n: int, t: int) -> None:
    """The class for a client acting alone that keeps members off the count (found in review): it
    deals an oversized update, steers its claims through members 1..2t - 2's real values and a norm
    of 0, and moves one norm-mask coordinate of every other member's share so that member's value
    equals its claim. Those n - 2t + 2 projections are off the polynomial with fewer than 2t - 1
    others agreeing: disputed while decoding corrects them (n <= 3t - 4), else undecodable. Whatever
    (n, t), with every member honest, the client is excluded or named as norm-unchecked, never
    counted as checked, and it is kept exactly when n <= 3t - 4 (the README's statement)."""
    round_ = _NormRound(n, t, clients=1, scale={0: 1000})
    round_.claims[0] = _understating_claims(round_, 0, honest_at=list(range(1, 2 * t - 1)), claimed=0)
    _dispute(round_, 0, list(range(2 * t - 1, n + 1)))
    assert all(round_.checks[j][0][2] == round_.claims[0][j - 1] for j in range(2 * t - 1, n + 1))
    verdict = _settled(round_, _squared_norm(0) * 2)
    assert 0 in verdict.excluded_clients or 0 in verdict.norm_unchecked, (n, t, verdict)
    assert (0 not in verdict.excluded_clients) == (n <= 3 * t - 4), (n, t, verdict)
    assert verdict.wrong_members == {}


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_over_limit_clients_are_excluded_and_a_norm_liar_named_about_exactly_the_kept_clients_it_lied_about(
        data) -> None:
    """The class for the norm at the demo's shape (n = 5, t = 3): any mix of clients within and
    beyond the limit, and at most one member posting false norm values about any clients, showing
    its shares or not. Exactly the clients beyond the limit are excluded, and the liar is named
    about exactly the kept clients it lied about."""
    n, t, clients = 5, 3, 4
    scales = [data.draw(st.sampled_from([1, 2, 1000])) for _ in range(clients)]
    round_ = _NormRound(n, t, clients=clients, scale=dict(enumerate(scales)))
    liar = data.draw(st.one_of(st.none(), st.integers(1, n)))
    lied_about = set()
    if liar is not None:
        for client in range(clients):
            if data.draw(st.booleans()):
                shift = data.draw(st.integers(1, MODULUS - 1))
                round_.lie_about_norm(liar, client, round_.claims[client][liar - 1] + shift)
                lied_about.add(client)
    shows = liar is not None and data.draw(st.booleans())
    complaints = {(liar, c): round_.shown(liar, c) for c in lied_about} if shows else {}
    limit = _squared_norm(clients - 1, 1)  # the largest honest (scale 1) norm: scale 2 and 1000 are beyond
    verdict = round_.verdict(limit, complaints, complained=frozenset({liar}) if shows else frozenset(),
                             window_closed=True)
    beyond = {c for c in range(clients) if _squared_norm(c, scales[c]) > limit}
    assert verdict.excluded_clients == {c: "NormOutOfRange" for c in beyond}
    kept_lies = sorted(lied_about - beyond)
    assert verdict.wrong_members == ({liar: tuple(kept_lies)} if kept_lies else {})
    kept = [c for c in range(clients) if c not in beyond]
    assert verdict.norm_unchecked == (tuple(c for c in kept if c in lied_about) if n - 1 < 2 * t - 1 else ())


# ------------------------------------------------------------------ n >= 3t - 2: what is not checked is excluded

STRICT_SHAPES = [(4, 2), (5, 2), (7, 3), (8, 3), (10, 4), (11, 4), (16, 6), (17, 6)]


def test_the_committee_excludes_unchecked_norms_from_3t_minus_2() -> None:
    assert [n for n in range(2, 12) if committee_excludes_unchecked_norms(n, 3)] == list(range(7, 12))
    assert committee_excludes_unchecked_norms(4, 2) and not committee_excludes_unchecked_norms(3, 2)
    assert committee_excludes_unchecked_norms(16, 6) and not committee_excludes_unchecked_norms(15, 6)


@pytest.mark.parametrize(("n", "t"), STRICT_SHAPES)
@pytest.mark.parametrize("dodge", ["withheld", "disputed", "beyond-field"])
def test_from_3t_minus_2_a_lone_client_that_keeps_its_norm_off_the_count_is_excluded_whatever_the_way(
        n: int, t: int, dodge: str) -> None:
    """The class "a client keeps members off the count", every way it has, with the rule on: it
    withholds shares from n - 2t + 2 or more members (they post "not opened" and have nothing to
    show; a share sealed so that it does not open is shown and excluded at any n, below), gets that many
    members disputed by corrupting a norm-mask coordinate of theirs, or claims a sample count whose
    limit reaches p; its claims are steered through the values of the members left (a norm of 0).
    Whatever (n, t) from 3t - 2, it is excluded and no honest member is named."""
    round_ = _NormRound(n, t, clients=2, scale={0: 1000})
    limit = _squared_norm(1) * 2
    off = list(range(2 * t - 1, n + 1))  # the n - 2t + 2 members the claims do not fit
    round_.claims[0] = _understating_claims(round_, 0, honest_at=list(range(1, 2 * t - 1)), claimed=0)
    if dodge == "withheld":
        for j in off:
            round_.checks[j][0] = None
    elif dodge == "disputed":
        _dispute(round_, 0, off)
    else:  # beyond the field: any value passes, so the honest claims do
        round_.claims[0] = claim_norm_values(round_.dealt[0], _layout(t))
        limit = MODULUS
    strict = _settled(round_, limit, exclude_unchecked_norms=True)
    assert 0 in strict.excluded_clients and 0 not in strict.norm_unchecked, (n, t, dodge, strict)
    assert strict.wrong_members == {}
    if dodge == "beyond-field":
        assert strict.excluded_clients == {0: "NormUnchecked", 1: "NormUnchecked"}
    else:
        assert 1 not in strict.excluded_clients  # the honest client beside it is kept, its norm checked
        assert 1 not in strict.norm_unchecked
        lenient = _settled(round_, limit)  # the control: without the rule the withheld dodge is kept
        assert (0 in lenient.norm_unchecked) == (dodge == "withheld" or n <= 3 * t - 4), lenient


@pytest.mark.parametrize(("n", "t"), STRICT_SHAPES)
@pytest.mark.parametrize("colluders_do", ["stay-silent", "post-false-values", "post-false-projections"])
def test_from_3t_minus_2_t_minus_1_colluders_never_get_an_honest_client_excluded_and_each_member_down_counts_like_one(
        n: int, t: int, colluders_do: str) -> None:
    """What the rule costs, as a class: t - 1 colluding members silent about an honest client (no
    checks, as if they could not open it), posting false norm values or false projections, never
    get it excluded while every other member is up; each honest member down besides them then
    excludes it once fewer than 2t - 1 members are left (the README's availability bound)."""
    colluders = list(range(1, t))
    for down in range(0, n - t + 2):
        round_ = _NormRound(n, t, clients=1)
        for j in colluders:
            if colluders_do == "stay-silent":
                round_.checks[j][0] = None
            elif colluders_do == "post-false-values":
                round_.lie_about_norm(j, 0, round_.claims[0][j - 1] + 1)
            else:
                projection, count, value = round_.checks[j][0]
                round_.checks[j][0] = ((projection + 1) % MODULUS, count, value)
        for j in range(n - down + 1, n + 1):
            del round_.checks[j]
        verdict = round_.verdict(_squared_norm(0) * 2, exclude_unchecked_norms=True, window_closed=True)
        up_and_honest = n - down - (t - 1)
        assert (0 in verdict.excluded_clients) == (up_and_honest < 2 * t - 1), (n, t, down, verdict)
        # false projections beyond the decoding bound make the checks undecodable first (the README's
        # "What holds, and when"), which excludes the client with the same number of members down
        beyond_bound = colluders_do == "post-false-projections" and t - 1 > (n - down - t) // 2
        assert set(verdict.excluded_clients.values()) <= {"NormUnchecked", *(["InconsistentShares"] * beyond_bound)}
        assert set(verdict.wrong_members) <= set(colluders)


# ------------------------------------------------------------------ shares that cannot be used

@pytest.mark.parametrize(("n", "t"), [(3, 2), (4, 3), (5, 3), (6, 3), (7, 3), (7, 4), (10, 6)])
def test_a_client_whose_share_one_member_shows_unusable_is_excluded_by_any_committee_and_nobody_named(
        n: int, t: int) -> None:
    """The class "a client seals a member a share it cannot use" (it does not open, opens to no
    share, or has a header no honest client writes): the member posts "not opened", shows its
    evidence, and every member excludes the client, for any n and t, however many others opened
    it and whether norms are checked or not. Before the member shows it, its complaint is awaited."""
    round_ = _NormRound(n, t, clients=2)
    round_.checks[n][0] = None
    for norms in ([False, True] if committee_decides_norms(n, t) else [False]):
        options = dict(norm_limit=_norm_limit(_squared_norm(1) * 2), norm_claims=round_.claims) if norms else {}
        first = _verdict(round_.checks, threshold=t, **options)
        assert (n, 0) in first.awaiting and 0 not in first.excluded_clients, (n, t, norms, first)
        verdict = _verdict(round_.checks, {(n, 0): UNUSABLE}, threshold=t, complained=frozenset({n}), **options)
        assert verdict.excluded_clients == {0: "UnusableShare"}, (n, t, norms, verdict)
        assert verdict.wrong_members == {} and verdict.awaiting == frozenset()


@pytest.mark.parametrize("shows", ["a-usable-share", "nothing"])
def test_a_member_that_posts_not_opened_and_then_shows_a_usable_share_or_no_evidence_is_named_and_the_client_kept(
        shows: str) -> None:
    """The other side of the class: a member cannot get an honest client excluded by saying it
    could not open its share. Shown a usable share (its evidence opens it), or evidence that
    proves nothing (a key that opens nothing, a proof that does not verify: None), it is named."""
    round_ = _NormRound(6, 3, clients=2)
    round_.checks[2][1] = None
    shown = round_.shown(2, 1) if shows == "a-usable-share" else None
    verdict = round_.verdict(_squared_norm(1) * 2, {(2, 1): shown}, complained=frozenset({2}))
    assert verdict.excluded_clients == {} and verdict.wrong_members == {2: (1,)}


def test_a_member_that_posts_not_opened_and_shows_nothing_leaves_the_client_as_before_once_the_window_closes() -> None:
    """What stays unexplained: a share that never reached the member (withheld, or lost) leaves
    nothing to show. Once the window closes the client is decided by the others' checks and the
    member is not named."""
    round_ = _NormRound(6, 3, clients=2)
    round_.checks[2][1] = None
    verdict = round_.verdict(_squared_norm(1) * 2, window_closed=True)
    assert verdict.excluded_clients == {} and verdict.wrong_members == {} and verdict.awaiting == frozenset()
    assert 1 not in verdict.norm_unchecked  # five matching values of six: its norm is still checked


def test_a_client_below_t_checks_waits_for_no_complaint_and_unread_claims_are_never_an_exclusion() -> None:
    """Two edges found in review: with fewer than t checks nobody sums the client, so no member
    is waited for about it; and where this member could not read a client's claims it cannot tell
    whether the others checked its norm, so even from 3t - 2 it lists the client, never excludes
    it (the others, which read the claims, decide; this member did not open it)."""
    round_ = _NormRound(7, 3, clients=2)
    for j in (1, 2, 3, 4, 5):
        round_.checks[j][0] = None
    first = round_.verdict(_squared_norm(1) * 2, exclude_unchecked_norms=True)
    assert not {pair for pair in first.awaiting if pair[1] == 0}
    round_ = _NormRound(7, 3, clients=2)
    del round_.claims[1]
    verdict = round_.verdict(_squared_norm(1) * 2, exclude_unchecked_norms=True)
    assert 1 not in verdict.excluded_clients and 1 in verdict.norm_unchecked
