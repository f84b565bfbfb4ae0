"""``fedtss explorer``: serve the explorer for a finished run or a running federation.

    fedtss explorer runs/demo [--port 8000]                     reopen a finished run
    fedtss explorer --rpc-url URL --deployment FILE             attach to any JSON-RPC node
    fedtss explorer runs/demo --rpc-url http://127.0.0.1:8545   attach to a run that is still going
    fedtss explorer --rpc-url URL --deployment FILE --confirmations 3   count only blocks 3 deep
    fedtss explorer runs/demo --task examples/digits_cnn.py     the task for .pt downloads (default: the run's)

Reopening starts anvil from the project's node_modules on a free port with
``--load-state runs/<name>/chain-state.json``: that flag only loads (``--state`` would also
write the file back on exit), so the run folder is never changed. That anvil is stopped when
the explorer stops.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape  # error messages name TOML tables: [rounds]

from agents.config import MAX_CONFIRMATIONS
from fedtss.chain import ChainReader, Deployment, load_deployment
from fedtss.chain.devnode import DevNode, start_anvil
from fedtss.chain.redaction import display_url
from fedtss.errors import ChainError, ConfigError, FedTSSError
from fedtss.storage import LocalStore
from orchestration.run_layout import RunLayout

__all__ = ["ReopenedChain", "RunFiles", "explorer", "find_run_files", "reopen_chain"]

console = Console(stderr=True)


@dataclass(frozen=True)
class RunFiles:
    """What the explorer reads from a run folder (anything but the deployment may be absent)."""

    run_dir: Path
    deployment: Path
    chain_state: Path
    store: Path
    report: Path


def find_run_files(run_dir: Path) -> RunFiles:
    """The launcher's layout of ``runs/<name>/`` (:class:`~orchestration.run_layout.RunLayout`); a
    ConfigError says what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder (run `fedtss demo` first, or pass --rpc-url and "
                          "--deployment to attach to a running federation)")
    layout = RunLayout(run_dir)
    files = RunFiles(run_dir, layout.deployment_path, layout.state_file, layout.store_dir, layout.report_path)
    if not files.deployment.is_file():
        raise ConfigError(f"{files.deployment}: missing; this folder holds no deployed federation")
    return files


# The reopened chain is a DevNode (``url``, ``process``, ``stop()``); the old name stays for callers.
ReopenedChain = DevNode


def reopen_chain(state_file: Path, *, port: int | None = None, timeout: float = 30.0) -> ReopenedChain:
    """Start anvil with ``--load-state state_file`` (never written back); return once it answers."""
    if not state_file.is_file() or state_file.stat().st_size == 0:
        raise ConfigError(f"{state_file}: no saved chain state (anvil writes it when the run's chain stops; "
                          "is the run still going? then attach with --rpc-url)")
    try:
        return start_anvil(port=port or None, load_state=state_file, new_session=True, timeout=timeout)
    except ChainError as exc:
        raise ChainError(f"{exc} (while loading {state_file})") from exc


def _check_deployment(w3_url: str, deployment: Deployment) -> None:
    """The node answers, is the record's chain and has its contract; ChainUnavailable if it
    does not answer, ConfigError naming what differs."""
    chain = ChainReader.at(w3_url, timeout=5)
    chain_id = chain.chain_id()
    code = chain.code(deployment.address)
    if chain_id != deployment.chain_id:
        raise ConfigError(f"the node at {display_url(w3_url)} is chain {chain_id}; the deployment record says "
                          f"{deployment.chain_id}")
    if not code:
        raise ConfigError(f"no contract at {deployment.address} on the node at {display_url(w3_url)}: "
                          "wrong node or record?")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def explorer(
    run_dir: Annotated[Path | None, typer.Argument(help="a run folder (runs/<name>) to reopen or attach to")] = None,
    rpc_url: Annotated[str | None, typer.Option(help="attach to this JSON-RPC node instead of reopening")] = None,
    deployment: Annotated[Path | None, typer.Option(help="deployment record (default: RUN_DIR/deployment.json)")] = None,
    port: Annotated[int, typer.Option(help="serve on http://127.0.0.1:PORT")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on (keep 127.0.0.1 unless you mean it)")] = "127.0.0.1",
    report: Annotated[Path | None, typer.Option(help="report.json for the charts (default: RUN_DIR/report.json)")] = None,
    poll: Annotated[float, typer.Option(help="seconds between the pages' checks for new blocks")] = 2.0,
    confirmations: Annotated[int, typer.Option(
        min=0, max=MAX_CONFIRMATIONS,
        help="show rounds and events only from blocks this many below the head; newer blocks are "
             "marked unconfirmed (0: up to the head, as on a local dev chain)")] = 0,
    task: Annotated[str | None, typer.Option(
        help="the federation's task (.py file or module), for model downloads as PyTorch state dicts "
             "(default: the one RUN_DIR/nodes/client-0.toml names)")] = None,
) -> None:
    """A read-only web explorer of a federation: rounds, parties, transactions, charts.

    It never signs or sends a transaction.
    """
    import uvicorn

    from orchestration.explorer.app import create_app
    from orchestration.explorer.chainview import FederationView

    chain: ReopenedChain | None = None
    try:
        files = find_run_files(run_dir) if run_dir is not None else None
        if files is None and (rpc_url is None or deployment is None):
            raise ConfigError("give a run folder (fedtss explorer runs/demo) or both --rpc-url and --deployment")
        record = load_deployment(deployment or files.deployment)
        if rpc_url is None:
            console.print(f"reopening {files.chain_state} in a read-only anvil ...")
            chain = reopen_chain(files.chain_state)
            rpc_url = chain.url
        _check_deployment(rpc_url, record)
        store = LocalStore(files.store) if files is not None and files.store.is_dir() else None
        view = FederationView(rpc_url, record, run_dir=files.run_dir if files else None,
                              confirmations=confirmations)
        app = create_app(view, report_path=report or (files.report if files else None), store=store,
                         poll_seconds=poll, task=task)
        console.print(f"fedtss explorer on http://{host}:{port}/  (node {display_url(rpc_url)}, "
                      f"contract {record.address}, {confirmations} confirmations); "
                      "Ctrl-C to stop")
        # uvicorn re-raises the SIGTERM it shut down on; make that an exception so the
        # `finally` below still stops the anvil this command started.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except FedTSSError as exc:
        console.print(f"[red]fedtss explorer:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        if chain is not None:
            chain.stop()
