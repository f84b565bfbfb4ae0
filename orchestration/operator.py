"""The operator's commands: read a federation's rounds and send the operator's transactions.

    fedtss status              current round, state, who has submitted, time left
    fedtss rounds              a table of every round and its timeline
    fedtss round N             one round in detail: submissions, shares, votes, exclusions, gas
    fedtss start               store the seeded initial model (or take --model-cid) and startTraining
    fedtss fail N              failRound(N): mark a stalled round Failed (anyone may send it)
    fedtss reopen N            reopenRound(N): open the next round from the last finalized model
    fedtss wait                wait until a round reaches a state (or training completes), with progress

``status`` and ``round N`` also name the members that posted no aggregate share or no vote
once the round reached the phase that asks for one, and say what to do about a failed or
overdue round (``fedtss reopen N``).

Every command takes ``--rpc-url`` and ``--deployment`` and prints rich tables; ``--json``
prints one JSON document instead, for scripts. After each transaction it confirms what was
sent (hash, block, gas, events); a revert names the contract's custom error and its
arguments (exit status 1). The signing key comes from ``FEDTSS_PRIVATE_KEY`` (or, on a local
anvil only, anvil's public dev account 0): never from the command line.

The read side is :class:`orchestration.explorer.chainview.FederationView`, shared with the
explorer, so the CLI and the web pages cannot disagree.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape  # error messages name TOML tables: [rounds]
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedtss.chain import (
    ClientSet,
    LocalAccount,
    RoundsContract,
    RoundState,
    event_arguments,
    load_deployment,
)
from fedtss.chain.rounds import RoundRecord
from fedtss.errors import ChainError, ConfigError, ContractRevert, FedTSSError
if TYPE_CHECKING:
    from fedtss.formats import ModelLayout

from orchestration.explorer.chainview import (
    FederationView,
    Overview,
    RoundDetail,
    RoundSummary,
    chain_now,
)

__all__ = ["ANVIL_CHAIN_ID", "RoundGaps", "compute_round_gaps", "operator_app", "register", "signer"]

ANVIL_CHAIN_ID = 31337
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEFAULT_DEPLOYMENT = Path("runs/demo/deployment.json")

operator_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Read a federation's rounds and send the operator's transactions.")
console = Console()
errors = Console(stderr=True)

RpcUrl = Annotated[str, typer.Option("--rpc-url", help="JSON-RPC node")]
DeploymentPath = Annotated[Path, typer.Option("--deployment", help="deployment record")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document instead of tables")]


# ------------------------------------------------------------------------ shared plumbing


def _open(rpc_url: str, deployment: Path) -> FederationView:
    if not deployment.is_file():
        raise ConfigError(f"no deployment record at {deployment}: pass --deployment FILE (`fedtss demo` writes "
                          "runs/<name>/deployment.json, `fedtss deploy` writes build/deployment.json)")
    view = FederationView(rpc_url, load_deployment(deployment), run_dir=deployment.parent)
    try:
        view.head()  # fail here, with the node's URL, if nothing answers
    except ChainError as exc:
        raise ChainError(f"{exc}; pass --rpc-url URL for another node, or start a local one with "
                         "`fedtss node`") from exc
    return view


def signer(view: FederationView, environ: Mapping[str, str] | None = None) -> LocalAccount:
    """``FEDTSS_PRIVATE_KEY``; on a local anvil without it, anvil's public dev account 0."""
    from fedtss.chain.devnode import dev_accounts
    from fedtss.chain.keys import load_account

    environ = os.environ if environ is None else environ
    if "FEDTSS_PRIVATE_KEY" not in environ and view.chain.chain_id() == ANVIL_CHAIN_ID:
        return dev_accounts(1)[0]
    return load_account(environ=environ)


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses, enums by name, bytes as 0x-hex, tuples as lists, a client set as its
    submission indices (a bitmap of up to 4096 bits is no JSON number a reader can hold)."""
    if isinstance(value, ClientSet):
        return list(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(_plain(document), indent=2))


def _fail(command: str, exc: Exception, as_json: bool) -> typer.Exit:
    if as_json:
        document: dict[str, Any] = {"ok": False, "error": str(exc)}
        if isinstance(exc, ContractRevert):
            document.update(revert=exc.name, args=exc.args_by_name)
        _print_json(document)
    else:
        errors.print(f"[red]fedtss {command}:[/red] {escape(str(exc))}", highlight=False)
    return typer.Exit(1 if isinstance(exc, ContractRevert) else 2)


@contextmanager
def _errors_as_exit(command: str, as_json: bool) -> Iterator[None]:
    try:
        yield
    except FedTSSError as exc:
        raise _fail(command, exc, as_json) from None


def _state(state: RoundState) -> str:
    return "None" if state is RoundState.Unopened else state.name


def _left(deadline: int, now: int) -> str:
    seconds = deadline - now
    if seconds < 0:
        return f"passed {-seconds} s ago"
    return f"{seconds // 60} min {seconds % 60} s left" if seconds >= 60 else f"{seconds} s left"


# ------------------------------------------------------------------- who is missing, what next


@dataclass(frozen=True)
class RoundGaps:
    """Members (number from 1, address) that did not post what the round's phase asks of them,
    and the operator's next step when the round will not end by itself."""

    without_share: tuple[tuple[int, str], ...]
    without_vote: tuple[tuple[int, str], ...]
    next_step: str | None

    def to_json(self) -> dict[str, Any]:
        return {"members_without_share": [a for _, a in self.without_share],
                "members_without_vote": [a for _, a in self.without_vote], "next_step": self.next_step}

    def lines(self) -> list[str]:
        said = [f"{what}: " + ", ".join(f"member {j} ({a})" for j, a in members)
                for what, members in (("no aggregate share from", self.without_share),
                                      ("no vote from", self.without_vote)) if members]
        return said + ([f"next: {self.next_step}"] if self.next_step else [])


def compute_round_gaps(record: RoundRecord, committee: Sequence[str], *, current_round: int, now: int) -> RoundGaps:
    """Who is missing from a round and what to do: pure, from the round's events (``fedtss.chain.rounds``).

    Shares are asked for once collection closed, votes once the threshold was reached (for a
    failed round, the phase it failed in counts). A failed latest round is reopened with
    ``fedtss reopen``; a committee phase past its deadline is failed first (``fedtss fail``),
    which the keeper does by itself when it runs.
    """
    number, state = record.round, record.state
    reached = record.failed_in if state is RoundState.Failed else state
    members = tuple(enumerate(committee, start=1))
    posted, voted = {s.member for s in record.shares}, {v.member for v in record.votes}
    without_share = tuple(m for m in members if m[1] not in posted) if reached >= RoundState.Aggregating else ()
    without_vote = tuple(m for m in members if m[1] not in voted) if reached >= RoundState.Reconstructing else ()
    next_step = None
    if state is RoundState.Failed and number == current_round:
        next_step = (f"round {number} failed; `fedtss reopen {number}` opens round {number + 1} from the last "
                     "finalized model (the operator's key)")
    elif state in (RoundState.Aggregating, RoundState.Reconstructing) and now > record.committee_deadline:
        next_step = (f"round {number} is past its committee deadline; `fedtss fail {number}` marks it Failed (a "
                     f"running keeper does), then `fedtss reopen {number}` opens round {number + 1}")
    return RoundGaps(without_share, without_vote, next_step)


def _round_gaps(view: FederationView, record: RoundRecord, *, current_round: int | None = None,
                committee: Sequence[str] | None = None) -> RoundGaps:
    """:func:`compute_round_gaps` with what it needs read from the chain (only what is not given)."""
    if committee is None:
        committee = [address for address, _ in view.read("committee", view.contract.committee)]
    if current_round is None:
        current_round = view.read("currentRound", view.contract.current_round)
    _, timestamp = view.head()
    return compute_round_gaps(record, committee, current_round=current_round, now=chain_now(timestamp, time.time()))


# --------------------------------------------------------------------------------- reads


def _status_document(o: Overview, gaps: RoundGaps | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "chain_id": o.chain_id, "contract": o.address, "head_block": o.head_block, "chain_time": o.chain_time,
        "current_round": o.current_round, "rounds_finalized": o.rounds_finalized,
        "finalize_until": o.finalize_until, "latest_model_cid": o.latest_model_cid,
        "latest_model_round": o.latest_model_round, "threshold": o.threshold,
        "committee": [a for _, a, _ in o.committee],
        "clients": [{"address": c, "submitted": c in o.submitted} for c in o.clients],
    }
    if o.info is not None:
        document.update(state=_state(o.info.state), updates=o.info.clients, shares=o.info.shares,
                        votes=o.info.votes, deadline=o.deadline,
                        seconds_left=None if o.deadline is None else o.deadline - o.chain_time)
        if o.info.state is RoundState.Failed:
            document["failed_while"] = _state(o.info.state_at_failure)
    if gaps is not None:
        document.update(gaps.to_json())
    return document


@operator_app.command()
def status(rpc_url: RpcUrl = DEFAULT_RPC_URL, deployment: DeploymentPath = DEFAULT_DEPLOYMENT,
           as_json: AsJson = False) -> None:
    """The current round, its state, who has submitted and the time left, from the chain."""
    with _errors_as_exit("status", as_json):
        view = _open(rpc_url, deployment)
        o = view.overview()
        # The current round as its events tell it; a blank record if a reorganization took its opening
        # away since the overview was read (then nobody is missing yet).
        record = None if o.info is None else view.round_record(o.current_round) or RoundRecord(round=o.current_round)
        gaps = None if record is None else _round_gaps(view, record, current_round=o.current_round,
                                                       committee=[address for _, address, _ in o.committee])
    if as_json:
        _print_json(_status_document(o, gaps))
        return
    console.print(f"contract [bold]{o.address}[/bold] on chain {o.chain_id}, block {o.head_block}")
    if o.info is None:
        console.print("training not started (no round opened)")
    else:
        line = f"round [bold]{o.current_round}[/bold]: [bold]{_state(o.info.state)}[/bold]"
        if o.info.state is RoundState.Failed:
            line += f" (while {_state(o.info.state_at_failure)})"
        if o.deadline is not None:
            line += f", deadline {_left(o.deadline, o.chain_time)}"
        console.print(line)
        console.print(f"updates {o.info.clients} (target {o.target_clients}, min {o.min_clients}), "
                      f"aggregate shares {o.info.shares}, votes {o.info.votes} (t = {o.threshold})")
        for line in gaps.lines():
            console.print(escape(line), highlight=False)
    table = Table(title=f"clients in round {o.current_round}" if o.current_round else "clients")
    table.add_column("#", justify="right")
    table.add_column("client")
    table.add_column("submitted")
    for i, client in enumerate(o.clients, start=1):
        table.add_row(str(i), client, "yes" if client in o.submitted else "no")
    console.print(table)
    console.print(f"rounds finalized {o.rounds_finalized} of {o.finalize_until}; latest model "
                  f"{o.latest_model_cid or '-'}"
                  + (f" (round {o.latest_model_round})" if o.latest_model_round else " (initial)"))


def _summary_document(s: RoundSummary) -> dict[str, Any]:
    return {"round": s.round, "state": _state(s.state), "submitted": s.submitted, "participants": s.participants,
            "model_cid": s.model_cid, "result_cid": s.result_cid,
            "failed_in": _state(s.failed_in) if s.failed_in else None,
            "timeline": [{"label": m.label, "block": m.block, "timestamp": m.timestamp, "tx": m.tx_hash}
                         for m in s.marks]}


@operator_app.command()
def rounds(rpc_url: RpcUrl = DEFAULT_RPC_URL, deployment: DeploymentPath = DEFAULT_DEPLOYMENT,
           as_json: AsJson = False) -> None:
    """A table of every round: state, updates, aggregated clients, timeline blocks, result."""
    with _errors_as_exit("rounds", as_json):
        summaries = _open(rpc_url, deployment).rounds()
    if as_json:
        _print_json([_summary_document(s) for s in summaries])
        return
    table = Table(title="rounds")
    for column in ("round", "state", "updates", "aggregated", "opened", "closed", "threshold", "ended", "result"):
        table.add_column(column, justify="right" if column not in ("state", "result") else "left")
    for s in summaries:
        end = s.mark("finalized") or s.mark("failed")
        blocks = [s.mark("opened"), s.mark("collection closed"), s.mark("threshold reached"), end]
        table.add_row(str(s.round), _state(s.state) + (f" (while {_state(s.failed_in)})" if s.failed_in else ""),
                      str(s.submitted), "-" if s.participants is None else str(s.participants),
                      *("-" if m is None else f"#{m.block}" for m in blocks), s.result_cid or "-")
    console.print(table if summaries else "no round opened yet")


def _detail_document(d: RoundDetail) -> dict[str, Any]:
    return {**_summary_document(d.summary), "info": _plain(d.info), "agreed_set": d.agreed_set,
            "submissions": _plain(d.submissions), "shares": _plain(d.shares), "votes": _plain(d.votes),
            "exclusions": _plain(d.exclusions), "gas": d.gas_by_kind}


@operator_app.command("round")
def round_(number: Annotated[int, typer.Argument(help="the round number (from 1)")],
           rpc_url: RpcUrl = DEFAULT_RPC_URL, deployment: DeploymentPath = DEFAULT_DEPLOYMENT,
           as_json: AsJson = False) -> None:
    """One round in detail: clients that submitted, aggregate shares, votes, exclusions, gas."""
    with _errors_as_exit("round", as_json):
        view = _open(rpc_url, deployment)
        detail = view.round(number)
        if detail is None:
            raise ConfigError(f"round {number} was never opened (see `fedtss rounds`)")
        gaps = _round_gaps(view, detail.record)
    if as_json:
        _print_json({**_detail_document(detail), **gaps.to_json()})
        return
    s = detail.summary
    console.print(f"round [bold]{number}[/bold]: [bold]{_state(detail.info.state)}[/bold]; trained from "
                  f"{s.model_cid}; result {s.result_cid or '-'}")
    console.print("timeline: " + ", ".join(f"{m.label} #{m.block}" for m in s.marks))
    console.print(_table("clients that submitted", ("index", "client", "manifest CID", "tx", "gas", "in agreed set"),
                         [(str(x.index), x.client, x.manifest_cid, x.tx_hash, f"{x.gas_used:,}",
                           "-" if x.included is None else "yes" if x.included else "NO") for x in detail.submissions]))
    console.print(_table("aggregate shares", ("member", "address", "share CID", "clients", "agreed set", "gas"),
                         [(str(x.member_index), x.member, x.cid, ",".join(map(str, x.included_clients)),
                           "-" if x.matches_agreed_set is None else "matches" if x.matches_agreed_set else "DIFFERS",
                           f"{x.gas_used:,}") for x in detail.shares]))
    console.print(_table("model votes", ("member", "model CID", "vote", "gas"),
                         [(v.member, v.model_cid, "-" if v.matches is None else "matching" if v.matches
                           else "CONFLICTING", f"{v.gas_used:,}") for v in detail.votes]))
    for line in gaps.lines():
        console.print(escape(line), highlight=False)
    for e in detail.exclusions:
        console.print(f"excluded {e.kind} {e.party}: {e.reason} (source: {e.source})")
    console.print("gas: " + ", ".join(f"{k} {v:,}" for k, v in sorted(detail.gas_by_kind.items()))
                  + f"; total {sum(detail.gas_by_kind.values()):,}")


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


# -------------------------------------------------------------------------- transactions


def _send(view: FederationView, command: str, what: str, send: Callable[[RoundsContract], dict],
          as_json: bool) -> dict[str, Any]:
    """Send one transaction with a spinner; print and return its confirmation."""
    if as_json:
        receipt = view.read(what, send, view.contract)
    else:
        with console.status(f"sending {what} and waiting for its receipt ..."):
            receipt = view.read(what, send, view.contract)
    confirmation = {
        "ok": True, "command": command, "call": what, "tx": "0x" + bytes(receipt["transactionHash"]).hex(),
        "block": receipt["blockNumber"], "gas_used": receipt["gasUsed"],
        "events": [{"name": e.name, "args": _plain(event_arguments(e))} for e in view.contract.events(receipt)],
    }
    if as_json:
        _print_json(confirmation)
    else:
        console.print(f"[green]sent[/green] {what}: tx {confirmation['tx']}, block {confirmation['block']}, "
                      f"gas {confirmation['gas_used']:,}")
        for event in view.contract.events(receipt):
            console.print(f"  event {event.name}("
                          + ", ".join(f"{k}={_plain(v)}" for k, v in event_arguments(event).items()) + ")")
    return confirmation


@operator_app.command()
def start(
    store: Annotated[str | None, typer.Option(help="store directory or Kubo RPC URL for the initial model")] = None,
    model_cid: Annotated[str | None, typer.Option(help="train from this stored model instead")] = None,
    rounds_: Annotated[int, typer.Option("--rounds", help="rounds to train")] = 10,
    # "\\[" : typer renders help as rich markup, which swallowed a bare "[federation]".
    seed: Annotated[int, typer.Option(help="seeds the initial model (as \\[federation] seed)")] = 0,
    task: Annotated[str | None, typer.Option(help="the task whose model() is the initial model "
                                                  "(default: examples/digits_mlp.py)")] = None,
    rpc_url: RpcUrl = DEFAULT_RPC_URL, deployment: DeploymentPath = DEFAULT_DEPLOYMENT, as_json: AsJson = False,
) -> None:
    """Open training (startTraining) from --model-cid, or from the seeded initial model put in --store."""
    from fedtss.cid import parse_cid

    with _errors_as_exit("start", as_json):
        if (store is None) == (model_cid is None):
            raise ConfigError("give exactly one of --store (to store the seeded initial model) or --model-cid")
        view = _open(rpc_url, deployment)
        if model_cid:
            cid = parse_cid(model_cid)
        elif as_json:
            cid = _store_initial_model(store, seed=seed, task=task, layout=view.deployment.model_layout)
        else:  # loading PyTorch and building the model takes seconds on a small machine
            with console.status("building the seeded initial model and storing it ..."):
                cid = _store_initial_model(store, seed=seed, task=task, layout=view.deployment.model_layout)
            console.print(f"initial model stored as {cid}")
        account = signer(view)
        _send(view, "start", f"startTraining({cid}, rounds={rounds_})",
              lambda c: c.start_training(account, cid, rounds_), as_json)


def _store_initial_model(store: str, *, seed: int, task: str | None, layout: ModelLayout | None) -> str:
    """The task's ``model()`` built under ``torch.manual_seed(seed)``, checked against the deployment's
    layout and stored; its CID."""
    from agents.learning import DEFAULT_TASK, load_task
    from fedtss.formats import encode_model, model_layout
    from fedtss.storage import open_store

    loaded = load_task(task or DEFAULT_TASK)
    tensors = loaded.initial_tensors(seed)
    difference = None if layout is None else model_layout(tensors).difference(layout)
    if difference is not None:
        raise ConfigError(f"task {loaded.name}: its model() does not have the layout the deployment fixes: "
                          f"{difference}; pass the federation's --task")
    return open_store(store).put(encode_model(tensors))


@operator_app.command()
def fail(number: Annotated[int, typer.Argument(help="the stalled round")],
         rpc_url: RpcUrl = DEFAULT_RPC_URL, deployment: DeploymentPath = DEFAULT_DEPLOYMENT,
         as_json: AsJson = False) -> None:
    """Mark a stalled round Failed (failRound); allowed once its phase's deadline has passed."""
    with _errors_as_exit("fail", as_json):
        view = _open(rpc_url, deployment)
        account = signer(view)
        _send(view, "fail", f"failRound({number})", lambda c: c.fail_round(account, number), as_json)


@operator_app.command()
def reopen(number: Annotated[int, typer.Argument(help="the failed round (the latest one)")],
           rpc_url: RpcUrl = DEFAULT_RPC_URL, deployment: DeploymentPath = DEFAULT_DEPLOYMENT,
           as_json: AsJson = False) -> None:
    """Open round N+1 from the last finalized model after round N failed (reopenRound; operator only)."""
    with _errors_as_exit("reopen", as_json):
        view = _open(rpc_url, deployment)
        account = signer(view)
        _send(view, "reopen", f"reopenRound({number})", lambda c: c.reopen_round(account, number), as_json)


_ENDED = (RoundState.Finalized, RoundState.Failed)


@operator_app.command()
def wait(
    number: Annotated[int | None, typer.Option("--round", help="the round to follow (default: current)")] = None,
    until: Annotated[str, typer.Option(help="state to wait for: Aggregating, Reconstructing, Finalized, Failed "
                                             "or ended (Finalized or Failed)")] = "ended",
    timeout: Annotated[float, typer.Option(help="give up after this many seconds (exit status 3)")] = 600.0,
    interval: Annotated[float, typer.Option(help="seconds between checks")] = 1.0,
    rpc_url: RpcUrl = DEFAULT_RPC_URL, deployment: DeploymentPath = DEFAULT_DEPLOYMENT, as_json: AsJson = False,
) -> None:
    """Wait until a round reaches a state, showing its progress (updates, shares, votes, deadline)."""
    with _errors_as_exit("wait", as_json):
        wanted = _wanted_states(until)
        view = _open(rpc_url, deployment)
        round_number = number or view.read("currentRound", view.contract.current_round)
        if round_number == 0:
            raise ConfigError("training has not started: no round to wait for (see `fedtss start`)")
        reached = _wait_for(view, round_number, wanted, timeout=timeout, interval=interval, quiet=as_json)
    document = {"round": round_number, "state": _state(reached) if reached else None, "reached": reached is not None}
    if as_json:
        _print_json(document)
    elif reached is not None:
        console.print(f"round {round_number} is {_state(reached)}")
    else:
        errors.print(f"fedtss wait: round {round_number} did not reach {until} within {timeout} s")
    if reached is None:
        raise typer.Exit(3)


def _wanted_states(until: str) -> tuple[RoundState, ...]:
    if until.lower() == "ended":
        return _ENDED
    try:
        return (RoundState[until.capitalize()],)
    except KeyError:
        raise ConfigError(f"--until: {until!r} is not a round state; use Aggregating, Reconstructing, "
                          "Finalized, Failed or ended") from None


def _wait_for(view: FederationView, round_: int, wanted: tuple[RoundState, ...], *, timeout: float,
              interval: float, quiet: bool) -> RoundState | None:
    """Poll the round until its state is in ``wanted``; a rich progress line shows where it is."""
    deadline = time.monotonic() + timeout
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"round {round_}", total=len(RoundState) - 2)
        while True:
            info = view.read("roundInfo", view.contract.round_info, round_)
            if info.state in wanted:
                return info.state
            if info.state in _ENDED:  # ended otherwise: it will never get there
                return None
            head, timestamp = view.head()
            now = chain_now(timestamp, time.time())
            limit = info.collection_deadline if info.state is RoundState.Collecting else info.committee_deadline
            progress.update(task, completed=min(int(info.state), 3), description=(
                f"round {round_} {_state(info.state)}: updates {info.clients}, shares {info.shares}, "
                f"votes {info.votes}; deadline {_left(limit, now) if limit else '-'}"))
            if time.monotonic() > deadline:
                return None
            time.sleep(interval)


# ---------------------------------------------------------------------------- registration


def _command_name(command: Any) -> str:
    return command.name or command.callback.__name__.strip("_").replace("_", "-")


def register(app: typer.Typer) -> None:
    """Add the operator's commands to the ``fedtss`` app (status, rounds, round, start, fail, reopen, wait).

    A command of the same name already on ``app`` is replaced, so that ``fedtss status`` is
    this module's (with --json and the submitters) whatever was registered before.
    """
    ours = {_command_name(c) for c in operator_app.registered_commands}
    app.registered_commands[:] = [c for c in app.registered_commands if _command_name(c) not in ours]
    app.registered_commands.extend(operator_app.registered_commands)
