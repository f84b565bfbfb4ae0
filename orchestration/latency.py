"""Where a round's seconds go: its critical path, read from the agents' log lines.

Every action an agent takes is one log line with the wall-clock time it ended, its ``seconds``
and, for the actions on a round's path, ``steps`` (:class:`agents.runtime.StepClock`)::

    2026-12-01 13:15:47,928 INFO fedtss.agents role=client address=0x23.. round=5 event=RoundOpened
        action=train_and_submit cid=.. tx=0x5a.. note=samples=244 steps=fetch:0.004,train:0.310,... seconds=0.701

A round ends when the t-th vote lands; before it, the t-th aggregate share fixed the client
set; before that, the last client's submission closed collection. Each of those three actors
started when it heard the step before it. So the critical path, step by step:

====================================  ==========================================================
``hear_round_opened``                 the last client's start minus the previous round's end
                                      (delivery of ``RoundOpened``, plus waiting for a core)
``client_<step>``                     that client's fetch, train, protect (quantize, share, seal),
                                      store, send (the transaction and its receipt)
``hear_collection_closed``            the t-th member's start of step 1 minus the last client's end
``member_open``                       its step 1: fetch and open each client's share (and post
                                      its checks' projections, when checks are on); with checks
                                      on, split into ``member_open_context`` (chain views, the
                                      model), ``_shares`` (fetch, open, sum, project) and
                                      ``_checks`` (the projections' transaction)
``wait_for_checks``                   its wait for every member's checks and the verdict
``member_post_share``                 deciding and posting its aggregate share (keep, send)
``hear_threshold``                    the t-th voter's start minus the t-th share's end
``member_publish_own_share``          storing its own aggregate share once the set is fixed
``wait_for_shares``                   its wait for t + 1 aggregate shares (or its share-wait)
``member_reconstruct`` ...            its reconstruct, views, store and send of the vote
====================================  ==========================================================

Steps are measured in one process each; the ``hear_*`` and ``wait_*`` rows are differences of
wall clocks of processes on one machine. ``total`` is the previous round's end to this one's
(round 1 has no previous end: its ``hear_round_opened`` and ``total`` are left out). The rows
sum to ``total`` up to the few milliseconds between an action's end and its log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

__all__ = ["ActionLine", "breakdowns", "median_breakdown", "parse_action_line", "read_actions", "round_breakdown"]

_MARKER = " fedtss.agents "
_FIELD = re.compile(r" (\w+)=(\S*)")
_SHARE_ACTIONS = ("aggregate_and_submit", "decide_clients")


@dataclass(frozen=True)
class ActionLine:
    """One action an agent logged: when it ended (seconds since the epoch) and what it did."""

    end: float
    role: str
    address: str
    round: int
    event: str
    action: str
    seconds: float
    tx: str | None = None
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return self.end - self.seconds


def parse_action_line(line: str) -> ActionLine | None:
    """The action of one agent log line, or None for any other line (or a malformed one).

    Only the fields the breakdown needs are read, where :func:`agents.runtime.format_fields`
    puts them: role through tx before the free-text ``note``, steps and seconds after it (a note
    may hold any characters, so the line is not split as a whole).
    """
    head, marker, rest = line.rstrip("\n").partition(_MARKER)
    if not marker:
        return None
    before_note, _, after_note = rest.partition(" note=")
    fields = dict(_FIELD.findall(" " + before_note))
    for name, value in _FIELD.findall(" " + (after_note or before_note)):
        if name in ("steps", "seconds"):
            fields[name] = value  # the last of each: the note comes before them
    if not {"action", "seconds", "round"} <= fields.keys():
        return None
    try:
        stamp = datetime.strptime(" ".join(head.split()[:2]), "%Y-%m-%d %H:%M:%S,%f")
        steps = {}
        for item in filter(None, fields.get("steps", "").split(",")):
            name, _, value = item.partition(":")
            steps[name] = float(value)
        return ActionLine(end=stamp.timestamp(), role=fields.get("role", ""), address=fields.get("address", ""),
                          round=int(fields["round"]), event=fields.get("event", ""), action=fields["action"],
                          seconds=float(fields["seconds"]), tx=fields.get("tx"), steps=steps)
    except ValueError:
        return None


def read_actions(logs_dir: Path) -> list[ActionLine]:
    """Every agent action logged in ``logs_dir`` (a run's ``logs/``), in the order they ended."""
    actions = []
    for path in sorted(Path(logs_dir).glob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            actions.extend(action for line in lines if (action := parse_action_line(line)) is not None)
    return sorted(actions, key=lambda action: action.end)


def _ended(actions: Iterable[ActionLine], round_: int, names: Sequence[str]) -> list[ActionLine]:
    """The round's actions of these names that sent a transaction, in the order they ended."""
    return sorted((a for a in actions if a.round == round_ and a.action in names and a.tx), key=lambda a: a.end)


def _of(actions: Iterable[ActionLine], round_: int, address: str, name: str, before: float) -> ActionLine | None:
    """The last ``name`` action of ``address`` in the round that ended by ``before``."""
    found = [a for a in actions if a.round == round_ and a.address == address and a.action == name and a.end <= before]
    return found[-1] if found else None


def round_breakdown(actions: Sequence[ActionLine], round_: int, threshold: int) -> dict[str, float] | None:
    """The critical path of ``round_`` (see the module doc), or None if it did not finalize."""
    clients = _ended(actions, round_, ("train_and_submit",))
    shares = _ended(actions, round_, _SHARE_ACTIONS)
    votes = _ended(actions, round_, ("reconstruct_and_propose",))
    if not clients or len(shares) < threshold or len(votes) < threshold:
        return None
    rows: dict[str, float] = {}
    previous = _ended(actions, round_ - 1, ("reconstruct_and_propose",))
    opened = previous[threshold - 1].end if len(previous) >= threshold else None
    last_client = clients[-1]
    if opened is not None:
        rows["hear_round_opened"] = last_client.start - opened
    rows.update({f"client_{step}": seconds for step, seconds in last_client.steps.items()})

    share = shares[threshold - 1]
    step_one = share if share.action == "aggregate_and_submit" else \
        _of(actions, round_, share.address, "aggregate_and_submit", share.start)
    if step_one is not None:
        rows["hear_collection_closed"] = step_one.start - last_client.end
        if step_one is share:  # checks off: step 1 posts the share itself
            rows["member_open"] = share.seconds - sum(share.steps.values())
        else:
            if step_one.steps:  # step 1 says where its time went
                rows.update({f"member_open_{step}": seconds for step, seconds in step_one.steps.items()})
            else:
                rows["member_open"] = step_one.seconds
            rows["wait_for_checks"] = share.start - step_one.end
    rows["member_post_share"] = sum(share.steps.values()) if step_one is share else share.seconds

    vote = votes[threshold - 1]
    heard = _of(actions, round_, vote.address, "start_reconstruction", vote.start)
    if heard is not None:
        rows["hear_threshold"] = heard.start - share.end
        rows["member_publish_own_share"] = heard.seconds
        rows["wait_for_shares"] = vote.start - heard.end
    rows.update({f"member_{step}": seconds for step, seconds in vote.steps.items()})
    if opened is not None:
        rows["total"] = vote.end - opened
    return {name: round(value, 3) for name, value in rows.items()}


def breakdowns(actions: Sequence[ActionLine], rounds: Iterable[int], threshold: int) -> dict[int, dict[str, float]]:
    """:func:`round_breakdown` of each round that finalized."""
    found = {round_: round_breakdown(actions, round_, threshold) for round_ in rounds}
    return {round_: rows for round_, rows in found.items() if rows is not None}


def median_breakdown(per_round: dict[int, dict[str, float]]) -> dict[str, Any]:
    """Each row's median over the rounds that have it (round 1, without ``total``, only adds its steps)."""
    names: list[str] = []
    for rows in per_round.values():
        names.extend(name for name in rows if name not in names)
    return {name: round(median(rows[name] for rows in per_round.values() if name in rows), 3) for name in names}
