"""Property test: random call sequences from random accounts keep the round invariants.

Hypothesis drives every transaction (and clock jumps) from operator, members, clients and an
outsider on a real anvil; each example starts from an evm_snapshot and is reverted after.
After every step the views are checked against the events seen so far:
states only move forward, counts match events, no account is counted twice, only allowlisted
clients and committee members are ever counted, ThresholdReached comes with the t-th share
over its set, after which no share over any other set is accepted (so no two sets ever both
have t shares), a finalized model has exactly t matching votes and its transaction opens the
next round (or completes training), and only the latest round can be live.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from fedtss.chain import (
    AggregateShareSubmitted,
    ChainEvent,
    ClientSet,
    ModelProposed,
    RoundEvent,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundsContract,
    RoundState,
    ThresholdReached,
    TrainingCompleted,
    UpdateSubmitted,
    deploy_rounds,
    events_of,
)
from fedtss.errors import ContractRevert
from tests.fixtures.anvil import default_rounds_config

RAW = 0x55
THRESHOLD = 3
LIVE = {RoundState.Collecting, RoundState.Aggregating, RoundState.Reconstructing}
TERMINAL = {RoundState.Finalized, RoundState.Failed}
#: Where one transaction can take a round: one step forward, or Failed from a live state.
NEXT = {
    RoundState.Unopened: {RoundState.Unopened, RoundState.Collecting},
    RoundState.Collecting: {RoundState.Collecting, RoundState.Aggregating, RoundState.Failed},
    RoundState.Aggregating: {RoundState.Aggregating, RoundState.Reconstructing, RoundState.Failed},
    RoundState.Reconstructing: {RoundState.Reconstructing, RoundState.Finalized, RoundState.Failed},
    RoundState.Finalized: {RoundState.Finalized},
    RoundState.Failed: {RoundState.Failed},
}
#: Successful calls and events over all examples, to check the search reaches every state.
STATS: Counter = Counter()

E = TypeVar("E", bound=RoundEvent)


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


class RoundsMachine(RuleBasedStateMachine):
    """Subclassed per test run with ``node`` and ``artifact`` set (see the test below)."""

    node = None
    artifact = None

    @initialize()
    def deploy(self) -> None:
        from dataclasses import replace

        self.snapshot_id = self.node.node.snapshot()
        accounts = self.node.accounts
        config = replace(
            default_rounds_config(accounts),
            clients=tuple(a.address for a in accounts[6:12]),
            min_clients=2,
            target_clients=4,
            collection_period=300,
            aggregation_period=300,
        )
        address, _ = deploy_rounds(self.node.w3, accounts[0], self.artifact, config)
        self.rounds = RoundsContract(self.node.w3, address, self.artifact.abi)
        self.senders = [accounts[0], *accounts[1:6], *accounts[6:12], accounts[20]]
        self.events: list[ChainEvent] = []
        self.last_state: dict[int, RoundState] = {}
        self._send("startTraining", 0, RAW, digest("model-0"), 3)

    # ------------------------------------------------------------------------- actions

    def _send(self, function: str, sender_index: int, *args: object) -> None:
        try:
            receipt = self.rounds.transact(self.senders[sender_index % len(self.senders)], function, *args)
        except ContractRevert as exc:
            STATS[f"reverted:{exc.name}"] += 1
            return  # a refused call changes nothing; the invariants check that
        self.events.extend(self.rounds.events(receipt))
        STATS[function] += 1
        for event in self.rounds.events(receipt):
            STATS[event.name] += 1

    def _round(self, offset: int) -> int:
        return max(self.rounds.current_round() + offset, 0)

    anyone = st.integers(0, 12)
    operator = st.sampled_from([0, 0, 0, 0, 12, 3])
    members = st.sampled_from([1, 2, 3, 4, 5] * 4 + [0, 7, 12])
    clients = st.sampled_from([6, 7, 8, 9, 10, 11] * 4 + [2, 12])
    offsets = st.sampled_from([0, 0, 0, 0, 0, 0, 0, -1, 1])

    @rule(sender=operator, count=st.integers(1, 3))
    def start_training(self, sender: int, count: int) -> None:
        self._send("startTraining", sender, RAW, digest("model-0"), count)

    @rule(sender=clients, offset=offsets, label=st.integers(0, 3))
    def submit_update(self, sender: int, offset: int, label: int) -> None:
        self._send("submitUpdate", sender, self._round(offset), RAW, digest(f"u{label}"))

    @rule(sender=anyone, offset=offsets)
    def close_collection(self, sender: int, offset: int) -> None:
        self._send("closeCollection", sender, self._round(offset))

    @rule(sender=members, offset=offsets, drop=st.sampled_from([None, None, 0, 1, 5]))
    def submit_aggregate_share(self, sender: int, offset: int, drop: int | None) -> None:
        round_ = self._round(offset)
        clients = self.rounds.round_info(round_).clients
        included = (1 << clients) - 1
        if drop is not None:
            included &= ~(1 << drop)
        self._send("submitAggregateShare", sender, round_, RAW, digest(f"s{sender}"), ClientSet(included).words())

    @rule(sender=members, offset=offsets, model=st.sampled_from(["A", "A", "B"]))
    def propose_model(self, sender: int, offset: int, model: str) -> None:
        self._send("proposeModel", sender, self._round(offset), RAW, digest(model))

    @rule(sender=anyone, offset=offsets)
    def fail_round(self, sender: int, offset: int) -> None:
        self._send("failRound", sender, self._round(offset))

    @rule(sender=operator, offset=offsets)
    def reopen_round(self, sender: int, offset: int) -> None:
        self._send("reopenRound", sender, self._round(offset))

    def _progress(self, pick: int, model: str) -> None:
        """Make one valid protocol move from a randomly picked eligible account."""
        round_ = self.rounds.current_round()
        state = self.rounds.state(round_)
        accounts = self.node.accounts
        if state == RoundState.Collecting:
            done = {e.client for e in self._by(UpdateSubmitted, round_)}
            waiting = [i for i in range(6, 12) if accounts[i].address not in done]
            self._send("submitUpdate", waiting[pick % len(waiting)], round_, RAW, digest(f"u{pick}"))
        elif state in (RoundState.Aggregating, RoundState.Reconstructing):
            shared = {e.member for e in self._by(AggregateShareSubmitted, round_)}
            voted = {e.member for e in self._by(ModelProposed, round_)}
            sharing = [j for j in range(1, 6) if accounts[j].address not in shared]
            voting = [j for j in range(1, 6) if accounts[j].address not in voted]
            if state == RoundState.Reconstructing and voting and (pick % 3 or not sharing):
                self._send("proposeModel", voting[pick % len(voting)], round_, RAW, digest(model))
            elif sharing:
                included = (1 << self.rounds.round_info(round_).clients) - 1
                if pick % 4 == 0:
                    included &= ~1
                self._send("submitAggregateShare", sharing[pick % len(sharing)], round_, RAW, digest("s"),
                           ClientSet(included).words())
        elif state == RoundState.Failed:
            self._send("reopenRound", 0, round_)
        else:
            self._send("startTraining", 0, RAW, digest("model-0"), 1 + pick % 2)

    @rule(pick=st.integers(0, 60), model=st.sampled_from(["A", "A", "A", "B"]))
    def progress(self, pick: int, model: str) -> None:
        self._progress(pick, model)

    @rule(pick=st.integers(0, 60), model=st.sampled_from(["A", "A", "A", "B"]))
    def progress_again(self, pick: int, model: str) -> None:
        self._progress(pick, model)

    @rule(pick=st.integers(0, 60), model=st.sampled_from(["A", "A", "A", "B"]))
    def progress_once_more(self, pick: int, model: str) -> None:
        self._progress(pick, model)

    @rule(seconds=st.sampled_from([60, 301]))
    def advance_time(self, seconds: int) -> None:
        self.node.increase_time(seconds)

    # ---------------------------------------------------------------------- invariants

    def _by(self, kind: type[E], round_: int | None = None) -> list[E]:
        return [e for e in events_of(self.events, kind) if round_ is None or e.round == round_]

    @invariant()
    def invariants_hold_for_the_rounds_a_step_can_touch(self) -> None:
        current = self.rounds.current_round()
        opened = [e.round for e in self._by(RoundOpened)]
        assert current == (max(opened) if opened else 0)
        for round_ in range(max(current - 1, 1), current + 1):
            self._check_round(round_, current)

    def teardown(self) -> None:
        try:
            if hasattr(self, "rounds"):
                for round_ in range(1, self.rounds.current_round() + 1):
                    self._check_round(round_, self.rounds.current_round())
        finally:
            if hasattr(self, "snapshot_id"):
                self.node.node.revert(self.snapshot_id)

    def _check_round(self, round_: int, current: int) -> None:
        info = self.rounds.round_info(round_)
        self._check_state_moves_forward(round_, info.state, current)
        self._check_counts_match_events(round_, info)
        self._check_threshold_and_finalization(round_, info)
        self._check_one_client_set_gathers_shares_after_the_threshold(round_)
        self._check_only_entitled_accounts_are_counted(round_)

    def _check_state_moves_forward(self, round_: int, state: RoundState, current: int) -> None:
        before = self.last_state.get(round_, RoundState.Unopened)
        assert state in NEXT[before], (round_, before, state)
        if round_ < current:
            assert state in TERMINAL
        failed = self._by(RoundFailed, round_)
        assert (state == RoundState.Failed) == bool(failed)
        self.last_state[round_] = state

    def _check_counts_match_events(self, round_: int, info) -> None:
        updates = self._by(UpdateSubmitted, round_)
        clients = [e.client for e in updates]
        assert info.clients == len(clients) == len(set(clients))
        assert [e.index for e in updates] == list(range(len(clients)))
        assert self.rounds.submitters(round_) == clients
        shares = self._by(AggregateShareSubmitted, round_)
        members = [e.member for e in shares]
        assert info.shares == len(members) == len(set(members))
        for included, count in Counter(e.included_clients for e in shares).items():
            assert self.rounds.share_count(round_, included) == count
        voters = [e.member for e in self._by(ModelProposed, round_)]
        assert info.votes == len(voters) == len(set(voters))

    def _check_only_entitled_accounts_are_counted(self, round_: int) -> None:
        accounts = self.node.accounts
        allowlist = {a.address for a in accounts[6:12]}
        committee = {a.address for a in accounts[1:6]}
        assert {e.client for e in self._by(UpdateSubmitted, round_)} <= allowlist
        assert {e.member for e in self._by(AggregateShareSubmitted, round_)} <= committee
        assert {e.member for e in self._by(ModelProposed, round_)} <= committee

    def _check_one_client_set_gathers_shares_after_the_threshold(self, round_: int) -> None:
        """Two sets with t public aggregate shares each would reveal the difference of their
        sums (one client's update): once ThresholdReached fixed a set, no other set's count moves."""
        events = [e for e in self.events if isinstance(e, (AggregateShareSubmitted, ThresholdReached))
                  and e.round == round_]
        reached = [i for i, e in enumerate(events) if isinstance(e, ThresholdReached)]
        counts = Counter(e.included_clients for e in events_of(events, AggregateShareSubmitted))
        assert sum(1 for n in counts.values() if n >= THRESHOLD) == len(reached), counts
        if not reached:
            return
        fixed = events[reached[0]].included_clients
        after = {e.included_clients for e in events_of(events[reached[0] + 1:], AggregateShareSubmitted)}
        assert after <= {fixed}, (fixed, after)
        for included in counts:
            if included != fixed:
                assert self.rounds.share_count(round_, included) < THRESHOLD

    def _check_threshold_and_finalization(self, round_: int, info) -> None:
        reached = self._by(ThresholdReached, round_)
        assert len(reached) <= 1
        if reached:
            assert info.included_clients == reached[0].included_clients
            over_set = [e for e in self._by(AggregateShareSubmitted, round_)
                        if e.included_clients == info.included_clients]
            assert len(over_set) >= THRESHOLD
            assert over_set[THRESHOLD - 1].tx_hash == reached[0].tx_hash, "not reached by the t-th share"
        finalized = self._by(RoundFinalized, round_)
        assert (info.state == RoundState.Finalized) == (len(finalized) == 1)
        if finalized:
            same_tx = [e for e in self.events if e.tx_hash == finalized[0].tx_hash]
            assert (any(e.round == round_ + 1 for e in events_of(same_tx, RoundOpened))
                    or any(events_of(same_tx, TrainingCompleted)))
            model = finalized[0].model_cid
            assert self.rounds.vote_count(round_, model) == THRESHOLD
            votes = Counter(e.model_cid for e in self._by(ModelProposed, round_))
            assert votes[model] == THRESHOLD and all(n < THRESHOLD for m, n in votes.items() if m != model)


def test_random_call_sequences_keep_the_round_invariants(anvil, rounds_artifact):
    machine = type("Machine", (RoundsMachine,), {"node": anvil, "artifact": rounds_artifact})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=10,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=True,
        ),
    )
    # The search must have exercised the whole round, failures and reopening included.
    for name in ("RoundFinalized", "ThresholdReached", "RoundFailed", "reopenRound", "CollectionClosed",
                 "reverted:RoundClientSetFixed"):
        assert STATS[name] > 0, (name, sorted(STATS.items()))
