"""Client checks on a real anvil: `submitChecks` and `submitComplaints` are recorded once per
member, inside their windows, with the lengths the round allows; the deployment's
`checkPeriod` is validated at deploy and at config load; the events decode to typed values.

Accounts (see tests/fixtures/anvil.py): 0 operator, 1-5 committee (t = 3), 6-15 clients,
20 an outsider. Periods 600 s; checks take CHECK seconds after collection closes, and
complaints CHECK more.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from fedtss.chain import (
    Aggregation,
    ChecksSubmitted,
    ClientSet,
    CollectionClosed,
    ComplaintsSubmitted,
    RoundState,
    dev_sealing_keypair,
    events_of,
    parse_rounds_config,
)
from fedtss.chain.rounds import fold_rounds
from fedtss.cid import DAG_PB, RAW, cid_from_parts
from fedtss.errors import ConfigError, ContractRevert
from tests.contracts.helpers import reverts_exactly as reverts
from tests.fixtures.anvil import default_rounds_config

PERIOD = 600
CHECK = 120


def cid(label: str, codec: int = RAW) -> str:
    return cid_from_parts(codec, hashlib.sha256(label.encode()).digest())


def projections(clients: int, member: int = 0) -> bytes:
    """24 bytes per client (any bytes will do: the contract does not read them)."""
    return b"".join((member * 1000 + i).to_bytes(24, "big") for i in range(clients))


def key(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


class Checks:
    """A deployment with client checks and the roles, with steps that drive round 1."""

    def __init__(self, chain, rounds) -> None:
        self.chain = chain
        self.rounds = rounds
        self.members = chain.accounts[1:6]
        self.clients = chain.accounts[6:16]
        self.outsider = chain.accounts[20]
        self.closed: CollectionClosed | None = None

    def to_aggregating(self, clients: int = 10) -> CollectionClosed:
        """Round 1 collects ``clients`` updates and closes (at once for 10, at the deadline below)."""
        self.rounds.start_training(self.chain.accounts[0], cid("model-0", DAG_PB), 1)
        receipts = [self.rounds.submit_update(c, 1, cid(f"m-{c.address}")) for c in self.clients[:clients]]
        if clients < 10:
            self.chain.increase_time(PERIOD + 1)
            receipts.append(self.rounds.close_collection(self.outsider, 1))
        (self.closed,) = events_of(self.rounds.events(receipts[-1]), CollectionClosed)
        return self.closed

    def check(self, member: int, data: bytes | None = None) -> dict:
        return self.rounds.submit_checks(self.members[member], 1, projections(10, member) if data is None else data)

    def complain(self, member: int, complaints: list[tuple[int, bytes]]) -> dict:
        return self.rounds.submit_complaints(self.members[member], 1, complaints)


@pytest.fixture
def c(chain, deploy) -> Checks:
    return Checks(chain, deploy(check_period=CHECK))


# ---------------------------------------------------------------------- the deployment


def test_a_default_deployment_has_no_checks_and_refuses_them(chain, deploy):
    s = Checks(chain, deploy())
    s.to_aggregating()
    assert s.rounds.check_period() == 0
    assert s.rounds.check_window(1) == (0, 0)
    with reverts("RoundChecksDisabled"):
        s.check(0)
    with reverts("RoundChecksDisabled"):
        s.complain(0, [(0, key("k"))])


def test_the_check_period_is_readable_and_the_window_is_one_and_two_periods_after_the_close(c):
    assert c.rounds.check_period() == CHECK
    closed = c.to_aggregating()
    closed_at = closed.aggregation_deadline - PERIOD
    assert c.rounds.check_window(1) == (closed_at + CHECK, closed_at + 2 * CHECK)
    config = replace(default_rounds_config(c.chain.accounts), check_period=CHECK)
    assert config.check_window(closed.aggregation_deadline) == c.rounds.check_window(1)


def test_the_window_is_zero_unless_the_round_is_aggregating(c):
    assert c.rounds.check_window(1) == (0, 0)  # never opened
    c.rounds.start_training(c.chain.accounts[0], cid("model-0", DAG_PB), 1)
    assert c.rounds.check_window(1) == (0, 0)  # collecting


def test_a_check_period_of_half_the_aggregation_period_or_more_reverts_at_deploy(deploy):
    with reverts("ConfigInvalidCheckPeriod", checkPeriod=PERIOD // 2, aggregationPeriod=PERIOD):
        deploy(check_period=PERIOD // 2)
    deploy(check_period=PERIOD // 2 - 1)  # both windows end before aggregation does


def test_the_masked_mode_refuses_a_nonzero_check_period_at_deploy(chain, deploy):
    keys = tuple(dev_sealing_keypair(a.address)[1] for a in chain.accounts[6:16])
    with reverts("ConfigInvalidCheckPeriod", checkPeriod=CHECK, aggregationPeriod=PERIOD):
        deploy(aggregation=Aggregation("masked", 48), client_keys=keys, check_period=CHECK)
    assert deploy(aggregation=Aggregation("masked", 48), client_keys=keys).check_period() == 0


# ------------------------------------------------------------------------ submitChecks


def test_the_challenge_block_on_instant_mining_is_bound_to_the_last_submission_so_no_client_learns_it_first(c):
    """The challenge is the hash of the block that closed collection. On anvil's instant mining
    that block holds the last client's submission alone, and its hash depends on the submitted
    digest (through the block's transactions root), so that client cannot know it before it has
    fixed its shares (their CIDs are in the manifest whose digest it submits). The same submission
    at the same time gives the same hash, the control; another digest gives another hash."""
    c.rounds.start_training(c.chain.accounts[0], cid("model-0", DAG_PB), 1)
    for client in c.clients[:9]:
        c.rounds.submit_update(client, 1, cid(f"m-{client.address}"))
    node = c.chain.node
    stamp = int(node.w3.eth.get_block("pending")["timestamp"]) + 5
    base_fee = int(node.w3.eth.get_block("latest")["baseFeePerGas"])
    hashes = []
    for manifest in ("manifest-a", "manifest-a", "manifest-b"):
        before = node.snapshot()
        node.w3.provider.make_request("evm_setNextBlockTimestamp", [stamp])
        node.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])  # revert does not restore it
        receipt = c.rounds.submit_update(c.clients[9], 1, cid(manifest))
        (closed,) = events_of(c.rounds.events(receipt), CollectionClosed)
        block = node.w3.eth.get_block(closed.block_number)
        assert block["timestamp"] == stamp and len(block["transactions"]) == 1
        hashes.append(bytes(block["hash"]))
        node.revert(before)
    assert hashes[0] == hashes[1] != hashes[2]


def test_checks_are_accepted_once_per_member_and_decoded_with_their_fields(c):
    c.to_aggregating()
    for j in range(5):
        (event,) = c.rounds.events(c.check(j))
        assert isinstance(event, ChecksSubmitted)
        assert (event.round, event.member, event.member_index) == (1, c.members[j].address, j + 1)
        assert event.checks == projections(10, j)
    assert c.rounds.member_checks(c.members[0].address) == (1, 0)
    with reverts("RoundAlreadySubmittedChecks", round=1, member=c.members[0].address):
        c.check(0)
    assert c.rounds.state(1) == RoundState.Aggregating  # checks move no state


def test_checks_of_other_than_twenty_four_bytes_per_client_revert_with_both_lengths(c):
    c.to_aggregating(clients=3)
    for length in (0, 48, 71, 73, 240):
        with reverts("RoundInvalidChecks", round=1, length=length, expectedLength=72):
            c.check(0, bytes(length))
    c.check(0, bytes(72))


def test_checks_from_a_non_member_revert(c):
    c.to_aggregating()
    for account in (c.outsider, c.clients[0]):
        with reverts("AccessNotCommitteeMember", account=account.address):
            c.rounds.submit_checks(account, 1, projections(10))


def test_checks_after_the_checks_deadline_revert_but_complaints_are_still_accepted(c):
    c.to_aggregating()
    checks_deadline, _ = c.rounds.check_window(1)
    c.chain.increase_time(CHECK + 1)
    with reverts("RoundDeadlinePassed", round=1, deadline=checks_deadline):
        c.check(0)
    c.complain(0, [(2, key("k2"))])


def test_checks_outside_aggregating_revert_with_the_state(c):
    c.rounds.start_training(c.chain.accounts[0], cid("model-0", DAG_PB), 1)
    with pytest.raises(ContractRevert) as info:
        c.check(0)
    assert info.value.name == "RoundWrongState"
    assert info.value.args_by_name["expectedStates"] == (RoundState.Aggregating,)
    assert info.value.args_by_name["actual"] == RoundState.Collecting


def test_checks_and_complaints_once_the_threshold_is_reached_revert(c):
    c.to_aggregating()
    for j in range(3):
        c.rounds.submit_aggregate_share(c.members[j], 1, cid(f"a{j}"), ClientSet.of(range(10)))
    assert c.rounds.check_window(1) == (0, 0)
    for send in (lambda: c.check(3), lambda: c.complain(3, [(0, key("k"))])):
        with pytest.raises(ContractRevert) as info:
            send()
        assert info.value.args_by_name["actual"] == RoundState.Reconstructing


# -------------------------------------------------------------------- submitComplaints


def test_complaints_are_accepted_once_per_member_and_decoded_with_their_fields(c):
    c.to_aggregating()
    c.check(1)
    proof = key("s") + key("c") + key("z")  # 96 bytes: a proven secret (the contract does not read it)
    (event,) = c.rounds.events(c.complain(1, [(4, key("k4")), (0, proof)]))
    assert isinstance(event, ComplaintsSubmitted)
    assert (event.round, event.member, event.member_index) == (1, c.members[1].address, 2)
    assert event.client_indices == (4, 0)
    assert event.evidence == (key("k4"), proof)
    assert c.rounds.member_checks(c.members[1].address) == (1, 1)
    with reverts("RoundAlreadySubmittedComplaints", round=1, member=c.members[1].address):
        c.complain(1, [(3, key("k3"))])
    c.complain(2, [(3, key("k3"))])  # complaining needs no checks of one's own


def test_an_empty_complaint_is_accepted_once_and_says_the_member_has_nothing_to_show(c):
    c.to_aggregating(clients=3)
    (event,) = c.rounds.events(c.complain(0, []))
    assert isinstance(event, ComplaintsSubmitted) and event.client_indices == () and event.evidence == ()
    assert c.rounds.member_checks(c.members[0].address) == (0, 1)
    with reverts("RoundAlreadySubmittedComplaints", round=1, member=c.members[0].address):
        c.complain(0, [(0, key("k0"))])


def test_complaints_with_mismatched_or_too_many_entries_revert_with_both_counts(c):
    c.to_aggregating(clients=3)
    member = c.members[0]
    with reverts("RoundInvalidComplaints", round=1, clientIndices=2, evidence=1):
        c.rounds.transact(member, "submitComplaints", 1, [0, 1], [key("k0")])
    with reverts("RoundInvalidComplaints", round=1, clientIndices=4, evidence=4):
        c.complain(0, [(i % 3, key(f"k{i}")) for i in range(4)])


def test_complaints_naming_a_client_beyond_the_round_revert_with_the_index(c):
    c.to_aggregating(clients=3)
    with reverts("RoundInvalidComplaintClient", round=1, clientIndex=3, clients=3):
        c.complain(0, [(0, key("k0")), (3, key("k3"))])
    c.complain(0, [(2, key("k2"))])


def test_complaints_after_the_complaints_deadline_revert(c):
    c.to_aggregating()
    _, complaints_deadline = c.rounds.check_window(1)
    c.chain.increase_time(2 * CHECK + 1)
    with reverts("RoundDeadlinePassed", round=1, deadline=complaints_deadline):
        c.complain(0, [(0, key("k0"))])


def test_complaints_from_a_non_member_revert(c):
    c.to_aggregating()
    with reverts("AccessNotCommitteeMember", account=c.outsider.address):
        c.rounds.submit_complaints(c.outsider, 1, [(0, key("k0"))])


@pytest.mark.parametrize("length", [0, 31, 33, 64, 95, 97])
def test_evidence_of_other_than_32_or_96_bytes_is_refused_before_anything_is_sent_and_by_the_contract(c, length):
    c.to_aggregating()
    with pytest.raises(ValueError, match="client 0"):
        c.complain(0, [(0, bytes(length))])
    assert c.rounds.member_checks(c.members[0].address) == (0, 0)
    with reverts("RoundInvalidComplaintEvidence", round=1, clientIndex=2, length=length):
        c.rounds.transact(c.members[0], "submitComplaints", 1, [0, 2], [key("k0"), bytes(length)])


# --------------------------------------------------------------------- the whole round


def test_a_round_with_checks_and_complaints_still_finalizes_and_the_fold_keeps_them(c):
    c.to_aggregating()
    receipts = [c.check(j) for j in range(5)] + [c.complain(4, [(7, key("k7"))])]
    c.chain.increase_time(2 * CHECK + 1)
    everyone = ClientSet.of(range(10))
    receipts += [c.rounds.submit_aggregate_share(c.members[j], 1, cid(f"a{j}"), everyone) for j in range(3)]
    receipts += [c.rounds.propose_model(c.members[j], 1, cid("model-1")) for j in range(3)]
    assert c.rounds.state(1) == RoundState.Finalized
    record = fold_rounds(c.rounds.get_events(0))[1]
    assert [e.member_index for e in record.checks] == [1, 2, 3, 4, 5]
    assert [(e.member_index, e.client_indices) for e in record.complaints] == [(5, (7,))]
    assert c.rounds.get_round_events(1, ComplaintsSubmitted) == list(record.complaints)


# ----------------------------------------------------------------------- configuration


def _table(**changes: object) -> dict:
    return {**default_rounds_config_table(), **changes}


def default_rounds_config_table() -> dict:
    from fedtss.chain.devnode import dev_accounts

    return default_rounds_config(dev_accounts(16)).to_json()


def test_the_check_period_round_trips_through_to_json_and_parse_rounds_config():
    config = parse_rounds_config(_table(check_period=CHECK))
    assert config.check_period == CHECK
    assert config.to_json()["check_period"] == CHECK
    assert parse_rounds_config(config.to_json()) == config
    assert config.constructor_arg()[-1] == CHECK


def test_a_config_without_a_check_period_has_checks_off():
    table = _table()
    del table["check_period"]
    assert parse_rounds_config(table).check_period == 0
    assert parse_rounds_config(table).check_window(1_000) is None


@pytest.mark.parametrize("period", [PERIOD // 2, PERIOD, -1])
def test_a_check_period_the_contract_would_refuse_is_a_config_error_naming_the_key(period):
    with pytest.raises(ConfigError, match=r"^check_period: .*" + str(period)):
        parse_rounds_config(_table(check_period=period))


def test_a_nonzero_check_period_in_the_masked_mode_is_a_config_error():
    keys = ["0x" + dev_sealing_keypair(f"0x{i:040x}")[1].hex() for i in range(1, 11)]
    with pytest.raises(ConfigError, match="^check_period: .*masked"):
        parse_rounds_config(_table(check_period=CHECK, aggregation={"mode": "masked", "client_keys": keys}))


def test_a_check_period_that_is_not_an_integer_is_a_config_error():
    with pytest.raises(ConfigError, match="^check_period: expected an integer"):
        parse_rounds_config(_table(check_period="60"))
