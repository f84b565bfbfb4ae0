"""orchestration.latency: a round's critical path from agents' log lines (written here as the
runtime writes them), each row the difference it is documented to be."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from agents.runtime import Outcome, _execute, format_fields
from orchestration.latency import breakdowns, median_breakdown, parse_action_line, read_actions, round_breakdown

T0 = datetime(2026, 12, 1, 13, 0, 0).timestamp()


def line(at: float, **fields) -> str:
    """An agent log line ending at ``T0 + at``, as logging.basicConfig formats the runtime's."""
    stamp = datetime.fromtimestamp(T0 + at)
    return f"{stamp:%Y-%m-%d %H:%M:%S},{stamp.microsecond // 1000:03d} INFO fedtss.agents {format_fields(**fields)}"


def round_lines(round_: int, start: float, *, checks: bool = True) -> list[str]:
    """One round on the path: two clients, three members (t = 2), times chosen to be told apart."""
    lines = [
        line(start + 0.50, role="client", address="0xc1", round=round_, event="RoundOpened", action="train_and_submit",
             tx="0x1", steps="fetch:0.010,train:0.200,protect:0.050,store:0.020,send:0.040", seconds=0.32),
        line(start + 0.70, role="client", address="0xc2", round=round_, event="RoundOpened", action="train_and_submit",
             tx="0x2", note="samples=50", steps="fetch:0.010,train:0.300,protect:0.050,store:0.020,send:0.040",
             seconds=0.42),
    ]
    if checks:
        for member, opened, decided in (("0xm1", 1.00, 1.40), ("0xm2", 1.10, 1.55), ("0xm3", 1.20, 1.70)):
            lines.append(line(start + opened, role="aggregator", address=member, round=round_,
                              event="CollectionClosed", action="aggregate_and_submit", note="checks posted",
                              seconds=0.20))
            lines.append(line(start + decided, role="aggregator", address=member, round=round_, event="Tick",
                              action="decide_clients", tx="0xs", steps="keep:0.010,send:0.050", seconds=0.10))
        shared = 1.55
    else:
        for member, posted in (("0xm1", 1.00), ("0xm2", 1.10), ("0xm3", 1.20)):
            lines.append(line(start + posted, role="aggregator", address=member, round=round_,
                              event="CollectionClosed", action="aggregate_and_submit", tx="0xs",
                              steps="keep:0.010,send:0.050", seconds=0.20))
        shared = 1.10
    for member, heard, voted in (("0xm1", 0.10, 0.60), ("0xm2", 0.15, 0.70), ("0xm3", 0.20, 0.80)):
        lines.append(line(start + shared + heard, role="aggregator", address=member, round=round_,
                          event="ThresholdReached", action="start_reconstruction", seconds=0.05))
        lines.append(line(start + shared + voted, role="aggregator", address=member, round=round_, event="Tick",
                          action="reconstruct_and_propose", tx="0xv",
                          steps="reconstruct:0.030,views:0.010,store:0.010,send:0.040", seconds=0.10))
    return lines


def test_a_log_line_of_an_action_parses_with_its_steps_and_other_lines_do_not():
    parsed = parse_action_line(line(1.25, role="client", address="0xc1", round=3, event="RoundOpened",
                                    action="train_and_submit", tx="0xab", note="samples=5",
                                    steps="train:0.2,send:0.05", seconds=0.3))
    assert parsed is not None
    assert (parsed.round, parsed.action, parsed.tx, parsed.steps) == (3, "train_and_submit", "0xab",
                                                                     {"train": 0.2, "send": 0.05})
    assert parsed.start == pytest.approx(T0 + 0.95, abs=1e-3)
    quoted = line(2.0, role="aggregator", address="0xm1", round=3, event="Tick", action="reconstruct_and_propose",
                  note="round is Finalized before this member's vote: not voting", seconds=0.1)
    assert parse_action_line(quoted).action == "reconstruct_and_propose"
    # A note is free text: quotes without spaces, both quotes, or a " seconds=" of its own.
    for note in ("can't", 'say "no" it\'s', "took seconds=99 steps=x:1 here"):
        tricky = parse_action_line(line(3.0, role="client", address="0xc1", round=3, event="RoundOpened",
                                        action="train_and_submit", tx="0x1", note=note, steps="train:0.5",
                                        seconds=0.75))
        assert (tricky.action, tricky.tx, tricky.steps, tricky.seconds) == ("train_and_submit", "0x1",
                                                                           {"train": 0.5}, 0.75), note
    for other in ("2026-12-01 13:00:00,000 INFO fedtss.agents role=client started=websocket after_block=1",
                  "2026-12-01 13:00:00,000 WARNING web3 something", "not a log line", ""):
        assert parse_action_line(other) is None


def test_the_critical_path_follows_the_last_client_the_t_th_share_and_the_t_th_vote(tmp_path):
    (tmp_path / "agents.log").write_text("\n".join(round_lines(1, 0.0) + round_lines(2, 2.35)) + "\n")
    actions = read_actions(tmp_path)
    rows = round_breakdown(actions, 2, threshold=2)
    assert rows["hear_round_opened"] == pytest.approx(2.35 + 0.70 - 0.42 - (1.55 + 0.70), abs=2e-3)
    assert rows["client_train"] == 0.3 and rows["client_send"] == 0.04  # the last client's steps
    assert rows["hear_collection_closed"] == pytest.approx(1.10 - 0.20 - 0.70, abs=2e-3)  # member 2: 2nd share
    assert rows["member_open"] == 0.2
    assert rows["wait_for_checks"] == pytest.approx(1.55 - 0.10 - 1.10, abs=2e-3)
    assert rows["member_post_share"] == 0.1
    assert rows["hear_threshold"] == pytest.approx(0.15 - 0.05, abs=2e-3)  # member 2 votes 2nd
    assert rows["wait_for_shares"] == pytest.approx(0.70 - 0.10 - 0.15, abs=2e-3)
    assert rows["member_reconstruct"] == 0.03
    assert rows["total"] == pytest.approx(2.35, abs=2e-3)
    # The rows cover the path: they add up to the total (the vote's steps leave 0.01 s unnamed).
    assert sum(v for k, v in rows.items() if k != "total") == pytest.approx(rows["total"], abs=0.02)
    assert "total" not in round_breakdown(actions, 1, threshold=2)  # no previous round's end to count from


def test_without_checks_step_one_posts_the_share_and_there_is_no_wait_for_checks(tmp_path):
    (tmp_path / "agents.log").write_text("\n".join(round_lines(1, 0.0, checks=False)) + "\n")
    rows = round_breakdown(read_actions(tmp_path), 1, threshold=2)
    assert "wait_for_checks" not in rows
    assert rows["member_post_share"] == pytest.approx(0.06) and rows["member_open"] == pytest.approx(0.14)


def test_step_one_with_checks_is_split_into_its_logged_steps_and_the_rows_still_sum(tmp_path):
    lines = [text.replace("note='checks posted'", "note='checks posted' steps=context:0.030,shares:0.120,checks:0.050")
             for text in round_lines(1, 0.0) + round_lines(2, 2.35)]
    (tmp_path / "agents.log").write_text("\n".join(lines) + "\n")
    rows = round_breakdown(read_actions(tmp_path), 2, threshold=2)
    assert "member_open" not in rows
    assert (rows["member_open_context"], rows["member_open_shares"], rows["member_open_checks"]) == (0.03, 0.12, 0.05)
    assert sum(v for k, v in rows.items() if k != "total") == pytest.approx(rows["total"], abs=0.02)


def test_a_round_without_t_votes_has_no_breakdown_and_medians_skip_it(tmp_path):
    lines = round_lines(1, 0.0) + round_lines(2, 2.35)
    lines = [text for text in lines if not ("round=2 " in text and "reconstruct_and_propose" in text and "0xm1" not in text)]
    (tmp_path / "agents.log").write_text("\n".join(lines) + "\n")
    found = breakdowns(read_actions(tmp_path), range(1, 3), threshold=2)
    assert list(found) == [1]
    assert median_breakdown(found)["client_train"] == 0.3


def test_the_runtime_logs_an_outcomes_steps_in_the_form_the_breakdown_reads(caplog):
    class Agent:
        role = "client"

        class node:  # noqa: N801 - a stand-in with the one attribute _execute reads
            address = "0xc1"

        @staticmethod
        def execute(action):
            return Outcome(cid="bafy", tx_hash="0x1", note="samples=5", steps={"train": 0.25, "send": 0.0312})

    class Event:
        name, round_number = "RoundOpened", 4

    with caplog.at_level(logging.INFO, logger="fedtss.agents"):
        _execute(Agent(), Event(), object())
    text = f"2026-12-01 13:00:00,000 INFO fedtss.agents {caplog.records[-1].getMessage()}"
    parsed = parse_action_line(text)
    assert parsed.steps == {"train": 0.25, "send": 0.031} and parsed.round == 4
