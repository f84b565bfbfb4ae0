"""FedTSSRounds on a real anvil: every transition, every revert, events and views.

Accounts (see tests/fixtures/anvil.py): 0 operator, 1-5 committee (t = 3), 6-15 clients,
16+ outsiders. Default limits: min_clients 3, target_clients 10, periods 600 s.
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

import pytest
from eth_account import Account

from fedtss.chain import (
    AggregateShareSubmitted,
    ChainEvent,
    ClientSet,
    CollectionClosed,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundState,
    ThresholdReached,
    events_of,
)
from fedtss.cid import DAG_PB, RAW, cid_from_parts
from tests.contracts.helpers import reverts

PERIOD = 600


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def cid(label: str, codec: int = RAW) -> str:
    """The CID of ``codec`` whose digest is ``digest(label)``."""
    return cid_from_parts(codec, digest(label))


def first(count: int) -> ClientSet:
    """The clients of submission indices ``0..count-1``."""
    return ClientSet.of(range(count))


#: All ten allowlisted clients of a round that reached target_clients.
EVERYONE = first(10)

E = TypeVar("E", bound=ChainEvent)


def names(rounds, receipt) -> list[str]:
    return [e.name for e in rounds.events(receipt)]


def event_of(rounds, receipt, kind: type[E]) -> E:
    """The one event of class ``kind`` in a receipt."""
    (event,) = events_of(rounds.events(receipt), kind)
    return event


class Scenario:
    """A deployed contract plus the roles, with steps that drive a round forward."""

    def __init__(self, chain, rounds) -> None:
        self.chain = chain
        self.rounds = rounds
        self.operator = chain.accounts[0]
        self.members = chain.accounts[1:6]
        self.clients = chain.accounts[6:16]
        self.outsider = chain.accounts[20]

    def start(self, rounds: int = 2) -> dict:
        return self.rounds.start_training(self.operator, cid("model-0", DAG_PB), rounds)

    def submit(self, count: int, round_: int = 1) -> list[dict]:
        return [self.rounds.submit_update(c, round_, cid(f"m{round_}-{c.address}")) for c in self.clients[:count]]

    def to_aggregating(self, clients: int = 10, round_: int = 1) -> None:
        if round_ == 1:
            self.start()
        self.submit(clients, round_)
        if clients < 10:
            self.chain.increase_time(PERIOD + 1)
            self.rounds.close_collection(self.outsider, round_)

    def share(self, member_index: int, included: ClientSet, round_: int = 1) -> dict:
        member = self.members[member_index]
        return self.rounds.submit_aggregate_share(member, round_, cid(f"a{round_}-{member_index}"), included)

    def to_reconstructing(self, round_: int = 1, included: ClientSet = EVERYONE) -> None:
        self.to_aggregating(round_=round_)
        for j in range(3):
            self.share(j, included, round_)

    def vote(self, member_index: int, model: str, round_: int = 1) -> dict:
        return self.rounds.propose_model(self.members[member_index], round_, cid(model))


@pytest.fixture
def s(chain, deploy) -> Scenario:
    return Scenario(chain, deploy())


# ------------------------------------------------------------------------ startTraining


def test_start_training_opens_round_one_with_model_and_collection_deadline(s):
    receipt = s.start(rounds=3)
    opened = event_of(s.rounds, receipt, RoundOpened)
    assert names(s.rounds, receipt) == ["TrainingStarted", "RoundOpened"]
    assert opened.round == 1
    assert opened.model_cid == cid("model-0", DAG_PB)
    assert opened.collection_deadline == s.chain.timestamp() + PERIOD
    assert s.rounds.current_round() == 1
    assert s.rounds.state(1) == RoundState.Collecting
    assert s.rounds.latest_model() == (0, cid("model-0", DAG_PB))
    assert s.rounds.training_progress() == (0, 3)


def test_start_training_by_non_operator_reverts(s):
    with reverts("AccessNotOperator", account=s.outsider.address):
        s.rounds.start_training(s.outsider, cid("m"), 1)


def test_start_training_while_training_reverts(s):
    s.start()
    with reverts("TrainingInProgress", round=1):
        s.start()


@pytest.mark.parametrize(("codec", "label"), [(0x71, "m"), (RAW, None)])
def test_start_training_with_invalid_cid_reverts(s, codec, label):
    model = digest(label) if label else bytes(32)
    with reverts("RoundInvalidCid", codec=codec, digest=model):
        s.rounds.transact(s.operator, "startTraining", codec, model, 1)  # parts no CID string can carry


def test_start_training_with_zero_rounds_reverts(s):
    with reverts("TrainingInvalidRoundCount", rounds=0):
        s.rounds.start_training(s.operator, cid("m"), 0)


# ------------------------------------------------------------------------- submitUpdate


def test_submit_update_emits_submission_order_index_and_records_submitter(s):
    s.start()
    receipts = s.submit(3)
    events = [s.rounds.events(r)[0] for r in receipts]
    assert [e.name for e in events] == ["UpdateSubmitted"] * 3
    assert [e.index for e in events] == [0, 1, 2]
    assert events[1].client == s.clients[1].address
    assert events[1].manifest_cid == cid(f"m1-{s.clients[1].address}")
    assert s.rounds.submitters(1) == [c.address for c in s.clients[:3]]
    assert s.rounds.has_submitted(1, s.clients[2].address)
    assert not s.rounds.has_submitted(1, s.clients[3].address)
    assert s.rounds.round_info(1).clients == 3


def test_submit_update_from_non_allowlisted_account_reverts(s):
    s.start()
    with reverts("AccessNotAllowlistedClient", account=s.outsider.address):
        s.rounds.submit_update(s.outsider, 1, cid("x"))


def test_second_submission_in_a_round_reverts(s):
    s.start()
    s.submit(1)
    with reverts("RoundAlreadySubmitted", round=1, account=s.clients[0].address):
        s.rounds.submit_update(s.clients[0], 1, cid("again"))


def test_submit_after_collection_deadline_reverts(s):
    s.start()
    deadline = s.rounds.round_info(1).collection_deadline
    s.chain.increase_time(PERIOD + 1)
    with reverts("RoundDeadlinePassed", round=1, deadline=deadline):
        s.submit(1)


def test_submit_to_a_round_not_opened_reverts_with_wrong_state(s):
    s.start()
    with reverts("RoundWrongState", round=2, expectedStates=(RoundState.Collecting,), actual=RoundState.Unopened):
        s.submit(1, round_=2)


def test_submit_with_invalid_cid_reverts(s):
    s.start()
    with reverts("RoundInvalidCid", codec=0x12):
        s.rounds.transact(s.clients[0], "submitUpdate", 1, 0x12, digest("x"))


def test_reaching_target_clients_closes_collection_in_the_same_transaction(s):
    s.start()
    last = s.submit(10)[-1]
    assert names(s.rounds, last) == ["UpdateSubmitted", "CollectionClosed"]
    closed = event_of(s.rounds, last, CollectionClosed)
    assert closed.clients == 10
    assert closed.aggregation_deadline == s.chain.timestamp() + PERIOD
    assert s.rounds.state(1) == RoundState.Aggregating
    with reverts("RoundWrongState", actual=RoundState.Aggregating):
        s.rounds.submit_update(s.clients[0], 1, cid("late"))


# ---------------------------------------------------------------------- closeCollection


def test_close_collection_before_deadline_reverts(s):
    s.start()
    s.submit(5)
    with reverts("RoundDeadlineNotReached", round=1):
        s.rounds.close_collection(s.outsider, 1)


def test_close_collection_after_deadline_with_minimum_moves_to_aggregating(s):
    s.start()
    s.submit(3)
    s.chain.increase_time(PERIOD + 1)
    receipt = s.rounds.close_collection(s.outsider, 1)
    assert names(s.rounds, receipt) == ["CollectionClosed"]
    assert event_of(s.rounds, receipt, CollectionClosed).clients == 3
    assert s.rounds.state(1) == RoundState.Aggregating


def test_close_collection_below_minimum_reverts_and_fail_round_fails_it(s):
    s.start()
    s.submit(2)
    s.chain.increase_time(PERIOD + 1)
    with reverts("RoundNotEnoughClients", round=1, clients=2, minClients=3):
        s.rounds.close_collection(s.outsider, 1)
    receipt = s.rounds.fail_round(s.outsider, 1)
    failed = s.rounds.events(receipt)[0]
    assert isinstance(failed, RoundFailed)
    assert failed.state_at_failure == RoundState.Collecting
    assert s.rounds.round_info(1).state_at_failure == RoundState.Collecting
    assert s.rounds.state(1) == RoundState.Failed


def test_fail_round_with_enough_clients_reverts_pointing_to_close_collection(s):
    s.start()
    s.submit(3)
    s.chain.increase_time(PERIOD + 1)
    with reverts("RoundHasEnoughClients", round=1, clients=3):
        s.rounds.fail_round(s.outsider, 1)


def test_fail_round_before_deadline_reverts(s):
    s.start()
    with reverts("RoundDeadlineNotReached", round=1):
        s.rounds.fail_round(s.outsider, 1)


# ----------------------------------------------------------------- submitAggregateShare


def test_aggregate_share_is_recorded_with_member_index_and_client_set(s):
    s.to_aggregating()
    receipt = s.share(1, first(3))
    event = s.rounds.events(receipt)[0]
    assert isinstance(event, AggregateShareSubmitted)
    assert event.member == s.members[1].address
    assert event.member_index == 2
    assert event.included_clients == ClientSet.of([0, 1, 2])
    assert event.share_cid == cid("a1-1")
    assert s.rounds.share_count(1, first(3)) == 1
    assert s.rounds.member(s.members[1].address) == (2, 1, 0)


def test_share_in_collecting_reverts_with_wrong_state(s):
    s.start()
    with reverts("RoundWrongState", actual=RoundState.Collecting,
                 expectedStates=(RoundState.Aggregating, RoundState.Reconstructing)):
        s.share(0, first(3))


def test_share_from_non_member_reverts(s):
    s.to_aggregating()
    with reverts("AccessNotCommitteeMember", account=s.outsider.address):
        s.rounds.submit_aggregate_share(s.outsider, 1, cid("x"), first(3))


def test_second_share_from_a_member_reverts(s):
    s.to_aggregating()
    s.share(0, first(3))
    with reverts("RoundAlreadySubmittedShare", round=1, member=s.members[0].address):
        s.share(0, first(4))


@pytest.mark.parametrize("included", [first(2), ClientSet.of([0, 1, 2, 10]), ClientSet(0)], ids=str)
def test_share_over_too_few_clients_or_clients_beyond_submitters_reverts(s, included):
    s.to_aggregating()
    with reverts("RoundInvalidClientSet", includedClients=tuple(included.words()), clients=10, minClients=3):
        s.share(0, included)


@pytest.mark.parametrize("words", [[], [0], [EVERYONE.bitmap, 0], [0, 1]],
                         ids=["no word", "a zero word", "a trailing zero word", "a second word for ten clients"])
def test_share_over_a_client_set_not_in_its_one_canonical_encoding_reverts(s, words):
    # Shares are counted by the set's encoding: two encodings of one set would count apart.
    s.to_aggregating()
    with reverts("RoundInvalidClientSet", includedClients=tuple(words), clients=10, minClients=3):
        s.rounds.transact(s.members[0], "submitAggregateShare", 1, RAW, digest("a"), words)


def test_a_round_of_300_clients_reaches_the_threshold_over_a_two_word_client_set(chain, deploy):
    keys = [hashlib.sha256(f"client {i}".encode()).digest() for i in range(300)]
    clients = [Account.from_key(key) for key in keys]
    for client in clients:
        chain.w3.provider.make_request("anvil_setBalance", [client.address, hex(10**18)])
    rounds = deploy(clients=tuple(c.address for c in clients), min_clients=3, target_clients=300)
    s = Scenario(chain, rounds)
    s.start()
    for i, client in enumerate(clients):
        rounds.submit_update(client, 1, cid(f"m-{i}"))
    assert rounds.round_info(1).state == RoundState.Aggregating
    beyond = ClientSet(first(300).bitmap | 1 << 300)
    with reverts("RoundInvalidClientSet", includedClients=tuple(beyond.words()), clients=300):
        s.share(0, beyond)
    included = ClientSet(first(300).bitmap & ~(1 << 7))  # all but index 7, in two words
    assert len(included.words()) == 2
    for j in range(3):
        receipt = s.share(j, included)
    assert event_of(rounds, receipt, ThresholdReached).included_clients == included
    assert rounds.round_info(1).included_clients == included
    assert rounds.share_count(1, included) == 3
    with reverts("RoundClientSetFixed", fixedClients=tuple(included.words()), givenClients=tuple(first(300).words())):
        s.share(3, first(300))


def test_share_after_aggregation_deadline_reverts_and_round_can_fail(s):
    s.to_aggregating()
    s.chain.increase_time(PERIOD + 1)
    with reverts("RoundDeadlinePassed", round=1):
        s.share(0, first(3))
    receipt = s.rounds.fail_round(s.outsider, 1)
    assert event_of(s.rounds, receipt, RoundFailed).state_at_failure == RoundState.Aggregating


def test_tth_share_over_the_same_set_reaches_threshold_in_the_same_transaction(s):
    s.to_aggregating()
    assert names(s.rounds, s.share(0, EVERYONE)) == ["AggregateShareSubmitted"]
    assert names(s.rounds, s.share(1, EVERYONE)) == ["AggregateShareSubmitted"]
    receipt = s.share(2, EVERYONE)
    assert names(s.rounds, receipt) == ["AggregateShareSubmitted", "ThresholdReached"]
    reached = event_of(s.rounds, receipt, ThresholdReached)
    assert reached.included_clients == EVERYONE
    assert reached.proposal_deadline == s.chain.timestamp() + PERIOD
    info = s.rounds.round_info(1)
    assert (info.state, info.shares, info.included_clients) == (RoundState.Reconstructing, 3, EVERYONE)


def test_shares_over_different_sets_are_counted_apart_and_first_set_to_reach_t_wins(s):
    s.to_aggregating()
    full, partial = EVERYONE, first(9)
    s.share(0, full)
    s.share(1, partial)
    s.share(2, partial)
    assert s.rounds.state(1) == RoundState.Aggregating
    assert (s.rounds.share_count(1, full), s.rounds.share_count(1, partial)) == (1, 2)
    receipt = s.share(3, partial)
    assert names(s.rounds, receipt)[-1] == "ThresholdReached"
    with reverts("RoundClientSetFixed", round=1, fixedClients=tuple(partial.words()), givenClients=tuple(full.words())):
        s.share(4, full)  # the losing set stays one short of t for good
    assert (s.rounds.share_count(1, full), s.rounds.share_count(1, partial)) == (1, 3)
    receipt = s.share(4, partial)  # an extra share over the winning set is still accepted
    assert names(s.rounds, receipt) == ["AggregateShareSubmitted"]
    assert s.rounds.round_info(1).included_clients == partial
    assert s.rounds.round_info(1).shares == 5


@pytest.mark.parametrize("other", [first(9), ClientSet.of(range(1, 10)), first(3)], ids=str)
def test_share_over_another_set_after_threshold_reverts_naming_both_sets(s, other):
    everyone = EVERYONE
    s.to_reconstructing(included=everyone)
    with reverts("RoundClientSetFixed", round=1, fixedClients=tuple(everyone.words()), givenClients=tuple(other.words())):
        s.share(3, other)
    assert s.rounds.share_count(1, other) == 0
    assert s.rounds.member(s.members[3].address) == (4, 0, 0), "a refused share leaves the member free to post"
    receipt = s.share(3, everyone)
    assert names(s.rounds, receipt) == ["AggregateShareSubmitted"]
    assert s.rounds.share_count(1, everyone) == 4
    assert s.rounds.round_info(1).shares == 4


def test_a_round_failed_after_threshold_accepts_no_share_and_its_reopening_counts_sets_afresh(s):
    everyone, partial = EVERYONE, first(9)
    s.to_reconstructing(included=everyone)
    s.chain.increase_time(PERIOD + 1)
    s.rounds.fail_round(s.outsider, 1)
    with reverts("RoundWrongState", round=1, actual=RoundState.Failed):
        s.share(3, partial)
    s.rounds.reopen_round(s.operator, 1)
    s.to_aggregating(round_=2)
    for j in range(3):
        s.share(j, partial, round_=2)
    assert s.rounds.round_info(2).included_clients == partial
    with reverts("RoundClientSetFixed", round=2, fixedClients=tuple(partial.words()), givenClients=tuple(everyone.words())):
        s.share(3, everyone, round_=2)
    assert (s.rounds.share_count(1, partial), s.rounds.share_count(2, everyone)) == (0, 0)


# --------------------------------------------------------------------------- proposeModel


def test_vote_before_threshold_reverts_with_wrong_state(s):
    s.to_aggregating()
    with reverts("RoundWrongState", expectedStates=(RoundState.Reconstructing,), actual=RoundState.Aggregating):
        s.vote(0, "model-1")


def test_vote_from_non_member_and_double_vote_revert(s):
    s.to_reconstructing()
    with reverts("AccessNotCommitteeMember", account=s.outsider.address):
        s.rounds.propose_model(s.outsider, 1, cid("model-1"))
    s.vote(0, "model-1")
    with reverts("RoundAlreadyVoted", round=1, member=s.members[0].address):
        s.vote(0, "model-other")


def test_conflicting_votes_are_recorded_and_t_matching_votes_finalize_and_open_next_round(s):
    s.to_reconstructing()
    s.vote(0, "model-1")
    receipt = s.vote(1, "model-bad")
    assert names(s.rounds, receipt) == ["ModelProposed"]
    assert s.rounds.vote_count(1, cid("model-bad")) == 1
    s.vote(2, "model-1")
    receipt = s.vote(3, "model-1")
    assert names(s.rounds, receipt) == ["ModelProposed", "RoundFinalized", "RoundOpened"]
    finalized = event_of(s.rounds, receipt, RoundFinalized)
    opened = event_of(s.rounds, receipt, RoundOpened)
    assert (finalized.round, finalized.model_cid) == (1, cid("model-1"))
    assert (opened.round, opened.model_cid) == (2, cid("model-1"))
    assert s.rounds.vote_count(1, cid("model-1")) == 3
    assert s.rounds.round_info(1).votes == 4
    assert s.rounds.state(1) == RoundState.Finalized
    assert (s.rounds.current_round(), s.rounds.state(2)) == (2, RoundState.Collecting)
    assert s.rounds.latest_model() == (1, cid("model-1"))


def test_vote_after_finalization_reverts_with_wrong_state(s):
    s.to_reconstructing()
    for j in range(3):
        s.vote(j, "model-1")
    with reverts("RoundWrongState", round=1, actual=RoundState.Finalized):
        s.vote(3, "model-1")
    with reverts("RoundWrongState", round=1, actual=RoundState.Finalized):
        s.share(4, EVERYONE)


def test_finalizing_the_last_requested_round_completes_training_and_allows_a_new_start(s):
    s.rounds.start_training(s.operator, cid("model-0"), 1)
    s.submit(10)
    for j in range(3):
        s.share(j, EVERYONE)
    s.vote(0, "model-1")
    s.vote(1, "model-1")
    receipt = s.vote(2, "model-1")
    assert names(s.rounds, receipt) == ["ModelProposed", "RoundFinalized", "TrainingCompleted"]
    assert s.rounds.current_round() == 1
    assert s.rounds.training_progress() == (1, 1)
    receipt = s.rounds.start_training(s.operator, cid("model-1"), 1)
    assert event_of(s.rounds, receipt, RoundOpened).round == 2


def test_vote_after_proposal_deadline_reverts_and_round_can_fail(s):
    s.to_reconstructing()
    s.chain.increase_time(PERIOD + 1)
    with reverts("RoundDeadlinePassed", round=1):
        s.vote(0, "model-1")
    receipt = s.rounds.fail_round(s.outsider, 1)
    assert event_of(s.rounds, receipt, RoundFailed).state_at_failure == RoundState.Reconstructing


def test_fail_round_on_a_finalized_round_reverts(s):
    s.to_reconstructing()
    for j in range(3):
        s.vote(j, "model-1")
    s.chain.increase_time(PERIOD + 1)
    with reverts("RoundWrongState", round=1, actual=RoundState.Finalized):
        s.rounds.fail_round(s.outsider, 1)


# ---------------------------------------------------------------------------- reopenRound


def _fail_first_round(s: Scenario) -> None:
    s.start()
    s.chain.increase_time(PERIOD + 1)
    s.rounds.fail_round(s.outsider, 1)


def test_reopen_failed_round_opens_the_next_from_the_initial_model(s):
    _fail_first_round(s)
    receipt = s.rounds.reopen_round(s.operator, 1)
    opened = s.rounds.events(receipt)[0]
    assert isinstance(opened, RoundOpened)
    assert (opened.round, opened.model_cid) == (2, cid("model-0", DAG_PB))
    assert s.rounds.current_round() == 2
    assert s.rounds.state(1) == RoundState.Failed


def test_reopen_after_a_finalized_round_uses_the_last_finalized_model(s):
    s.to_reconstructing()
    for j in range(3):
        s.vote(j, "model-1")
    s.chain.increase_time(PERIOD + 1)
    s.rounds.fail_round(s.outsider, 2)
    receipt = s.rounds.reopen_round(s.operator, 2)
    assert event_of(s.rounds, receipt, RoundOpened).model_cid == cid("model-1")


def test_reopen_by_non_operator_or_of_a_live_or_old_round_reverts(s):
    _fail_first_round(s)
    with reverts("AccessNotOperator", account=s.outsider.address):
        s.rounds.reopen_round(s.outsider, 1)
    s.rounds.reopen_round(s.operator, 1)
    with reverts("RoundWrongState", round=2, expectedStates=(RoundState.Failed,), actual=RoundState.Collecting):
        s.rounds.reopen_round(s.operator, 2)
    s.chain.increase_time(PERIOD + 1)
    s.rounds.fail_round(s.outsider, 2)
    with reverts("RoundNotLatest", round=1, latest=2):
        s.rounds.reopen_round(s.operator, 1)


# ------------------------------------------------------------------------ views and config


def test_views_return_committee_keys_clients_and_threshold(s):
    config_members = s.members
    committee = s.rounds.committee()
    assert [address for address, _ in committee] == [m.address for m in config_members]
    assert all(len(key) == 32 for _, key in committee)
    assert s.rounds.threshold() == 3
    assert s.rounds.clients() == [c.address for c in s.clients]
    assert s.rounds.call("isClient", s.clients[0].address)
    assert not s.rounds.call("isClient", s.outsider.address)
    assert s.rounds.member(s.outsider.address) == (0, 0, 0)
    assert s.rounds.call("operator") == s.operator.address
    assert s.rounds.state(7) == RoundState.Unopened


def test_has_submitted_answers_for_earlier_rounds_too(s):
    s.to_reconstructing()
    for j in range(3):
        s.vote(j, "model-1")
    s.rounds.submit_update(s.clients[4], 2, cid("r2"))
    assert s.rounds.has_submitted(1, s.clients[4].address)
    assert s.rounds.has_submitted(2, s.clients[4].address)
    assert not s.rounds.has_submitted(2, s.clients[5].address)
    assert s.rounds.submitters(2) == [s.clients[4].address]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"threshold": 6}, "ConfigInvalidThreshold"),
        ({"threshold": 1}, "ConfigInvalidThreshold"),
        ({"min_clients": 1}, "ConfigInvalidClientLimits"),
        ({"min_clients": 11, "target_clients": 10}, "ConfigInvalidClientLimits"),
        ({"collection_period": 0}, "ConfigInvalidPeriod"),
    ],
)
def test_constructor_refuses_bad_configuration(deploy, overrides, error):
    with reverts(error):
        deploy(**overrides)


def test_constructor_refuses_duplicate_member_and_zero_key(chain, deploy):
    from dataclasses import replace

    from tests.fixtures.anvil import default_rounds_config

    committee = default_rounds_config(chain.accounts).committee
    with reverts("ConfigDuplicateMember", account=committee[0].address):
        deploy(committee=(*committee[:4], committee[0]))
    with reverts("ConfigInvalidSealingKey", member=committee[1].address):
        deploy(committee=(committee[0], replace(committee[1], sealing_key=bytes(32)), *committee[2:]))


# ------------------------------------------------------------------ deadline boundaries


def _next_block_at(s: Scenario, timestamp: int) -> None:
    """Mine the next transaction at exactly ``timestamp`` (anvil's evm_setNextBlockTimestamp)."""
    s.chain.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def test_update_at_the_exact_collection_deadline_is_accepted_and_close_is_not(s):
    s.start()
    s.submit(2)
    deadline = s.rounds.round_info(1).collection_deadline
    _next_block_at(s, deadline)
    receipt = s.rounds.submit_update(s.clients[2], 1, cid("last-second"))
    assert s.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == deadline
    _next_block_at(s, deadline + 1)
    receipt = s.rounds.close_collection(s.outsider, 1)
    assert event_of(s.rounds, receipt, CollectionClosed).clients == 3


def test_fail_round_at_the_exact_committee_deadline_reverts_and_one_second_later_fails(s):
    s.to_aggregating()
    deadline = s.rounds.round_info(1).committee_deadline
    s.chain.increase_time(deadline - s.chain.timestamp() - 1)
    with reverts("RoundDeadlineNotReached", round=1, deadline=deadline):
        s.rounds.fail_round(s.outsider, 1)
    _next_block_at(s, deadline)
    receipt = s.share(0, first(3))  # the last second still belongs to the committee
    assert s.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == deadline
    _next_block_at(s, deadline + 1)
    assert names(s.rounds, s.rounds.fail_round(s.outsider, 1)) == ["RoundFailed"]


def test_replaying_a_signed_submission_is_refused_and_counts_once(s):
    s.start()
    client = s.clients[0]
    call = s.rounds.contract.functions.submitUpdate(1, RAW, digest("once"))
    tx = call.build_transaction({"from": client.address, "nonce": s.chain.w3.eth.get_transaction_count(client.address),
                                 "gas": 200_000})
    raw = client.sign_transaction(tx).raw_transaction
    s.chain.w3.eth.wait_for_transaction_receipt(s.chain.w3.eth.send_raw_transaction(raw))
    with pytest.raises(Exception, match="nonce"):
        s.chain.w3.eth.send_raw_transaction(raw)
    assert s.rounds.round_info(1).clients == 1


# ------------------------------------------------------------------- views and limits


def test_has_submitted_is_false_for_round_zero_which_never_exists(s):
    s.start()
    assert not s.rounds.has_submitted(0, s.clients[0].address)


def test_constructor_refuses_a_period_whose_deadline_would_overflow(chain, deploy):
    with reverts("ConfigInvalidPeriod"):
        deploy(collection_period=2**64 - 1)
    with reverts("ConfigInvalidPeriod"):
        deploy(aggregation_period=2**32)
    largest = deploy(collection_period=2**32 - 1, aggregation_period=2**32 - 1)
    largest.start_training(chain.accounts[0], cid("m"), 1)  # its deadlines still fit
    assert largest.round_info(1).collection_deadline == chain.timestamp() + 2**32 - 1


# ------------------------------------------------- the remaining reverts, one branch each


def _raw_deploy(chain, rounds_artifact, config_tuple: tuple) -> None:
    """Deploy with a hand-made ``Config`` struct (what RoundsConfig cannot even express)."""
    from fedtss.chain.contract import _RevertDecoder, _send

    factory = chain.w3.eth.contract(abi=rounds_artifact.abi, bytecode=rounds_artifact.bytecode)
    _send(chain.w3, chain.accounts[0], factory.constructor(config_tuple), _RevertDecoder(rounds_artifact.abi))


def test_constructor_refuses_a_committee_without_one_key_per_member_or_of_one(chain, rounds_artifact):
    from tests.fixtures.anvil import default_rounds_config

    arg = list(default_rounds_config(chain.accounts).constructor_arg())
    with reverts("ConfigInvalidCommittee", committeeSize=5, sealingKeys=4):
        _raw_deploy(chain, rounds_artifact, tuple([arg[0], arg[1][:4], *arg[2:]]))
    with reverts("ConfigInvalidCommittee", committeeSize=1, sealingKeys=1):
        _raw_deploy(chain, rounds_artifact, tuple([arg[0][:1], arg[1][:1], *arg[2:]]))


def test_constructor_refuses_zero_and_duplicate_clients_and_a_target_beyond_4096(chain, deploy):
    from tests.fixtures.anvil import default_rounds_config

    clients = default_rounds_config(chain.accounts).clients
    with reverts("ConfigZeroAddress"):
        deploy(clients=(*clients[:9], "0x" + "00" * 20))
    with reverts("ConfigDuplicateClient", account=clients[0]):
        deploy(clients=(*clients[:9], clients[0]))
    with reverts("ConfigInvalidClientLimits", minClients=3, targetClients=4097, allowlisted=10):
        deploy(target_clients=4097)



def test_an_allowlist_below_min_clients_deploys_but_training_opens_only_once_add_clients_completes_it(chain, deploy):
    from tests.fixtures.anvil import default_rounds_config

    clients = default_rounds_config(chain.accounts).clients
    rounds = deploy(min_clients=11, target_clients=12)  # 10 clients: addClients may still complete it
    operator = chain.accounts[0]
    with reverts("TrainingNotEnoughClients", allowlisted=10, minClients=11):
        rounds.start_training(operator, cid("model-0"), 1)
    rounds.add_clients(operator, [chain.accounts[16].address])
    rounds.start_training(operator, cid("model-0"), 1)
    assert rounds.clients() == [*clients, chain.accounts[16].address]


def test_start_training_while_the_latest_round_is_failed_reverts_until_it_is_reopened(s):
    _fail_first_round(s)
    with reverts("TrainingInProgress", round=1):
        s.start()
    s.rounds.reopen_round(s.operator, 1)
    assert s.rounds.state(2) == RoundState.Collecting


def test_start_training_with_a_round_count_that_would_overflow_reverts(s):
    with reverts("TrainingInvalidRoundCount", rounds=2**64 - 1):
        s.rounds.start_training(s.operator, cid("m"), 2**64 - 1)


def test_close_collection_outside_collecting_reverts_with_wrong_state(s):
    with reverts("RoundWrongState", round=1, actual=RoundState.Unopened):
        s.rounds.close_collection(s.outsider, 1)
    s.to_aggregating()
    with reverts("RoundWrongState", round=1, actual=RoundState.Aggregating):
        s.rounds.close_collection(s.outsider, 1)


def test_share_and_vote_with_invalid_cid_revert(s):
    s.to_reconstructing()
    with reverts("RoundInvalidCid", codec=0x71):
        s.rounds.transact(s.members[3], "submitAggregateShare", 1, 0x71, digest("a"), EVERYONE.words())
    with reverts("RoundInvalidCid", codec=RAW, digest=bytes(32)):
        s.rounds.transact(s.members[0], "proposeModel", 1, RAW, bytes(32))


def test_a_late_share_while_reconstructing_reverts_with_deadline_passed(s):
    s.to_reconstructing()
    deadline = s.rounds.round_info(1).committee_deadline
    s.chain.increase_time(PERIOD + 1)
    with reverts("RoundDeadlinePassed", round=1, deadline=deadline):
        s.share(3, EVERYONE)


def test_fail_round_and_votes_on_unopened_or_failed_rounds_revert_with_wrong_state(s):
    with reverts("RoundWrongState", round=1, actual=RoundState.Unopened):
        s.rounds.fail_round(s.outsider, 1)
    _fail_first_round(s)
    with reverts("RoundWrongState", round=1, actual=RoundState.Failed):
        s.rounds.fail_round(s.outsider, 1)
    with reverts("RoundWrongState", round=1, actual=RoundState.Failed):
        s.vote(0, "model-1")


def test_a_round_one_call_sent_again_once_round_two_is_open_reverts_with_wrong_state(s):
    s.to_reconstructing()
    for j in range(3):
        s.vote(j, "model-1")
    assert s.rounds.state(2) == RoundState.Collecting
    with reverts("RoundWrongState", round=1, actual=RoundState.Finalized):
        s.rounds.submit_update(s.clients[0], 1, cid("again"))
    with reverts("RoundWrongState", round=1, actual=RoundState.Finalized):
        s.share(4, EVERYONE)
