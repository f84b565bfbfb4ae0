"""``fedtss``: the one command-line entry point.

    fedtss demo       a whole federation on this machine (anvil + local store + agents + keeper)
    fedtss node       a local chain that keeps its state in runs/<name>/ (stays up until Ctrl-C)
    fedtss deploy     compile and deploy the round contract (deploy.py)
    fedtss client     run a client agent          (python -m agents.client --config FILE)
    fedtss aggregator run a committee member      (python -m agents.aggregator --config FILE)
    fedtss keeper     close, fail (and reopen) rounds whose deadline passed
    fedtss keys       new keys for a node of a real federation (account keystore, sealing key, masking key)
    fedtss task layout   the [model] table fixing a task's model layout in a deployment config
    fedtss model export  a finalized model as a PyTorch state dict the task's model() loads
    fedtss start, status, rounds, round, fail, reopen, wait   the operator's commands (orchestration.operator)
    fedtss explorer   the web explorer

Keys never come from the command line: ``FEDTSS_PRIVATE_KEY`` (or a keystore named in a node
config), ``FEDTSS_SEALING_KEY`` for members. Every error is one line that says what to change.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape  # error messages name TOML tables: [rounds]

from fedtss.errors import ConfigError, FedTSSError

__all__ = ["app"]

if TYPE_CHECKING:
    from fedtss.task import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="fedtss: federated learning with threshold secret sharing, coordinated by a contract.")
console = Console()
errors = Console(stderr=True)

_RUNS = Path("runs")


def _fail(command: str, exc: Exception, code: int = 2) -> typer.Exit:
    errors.print(f"[red]fedtss {command}:[/red] {escape(str(exc))}", highlight=False)
    return typer.Exit(code)


def _warn(command: str, message: str) -> None:
    errors.print(f"[yellow]fedtss {command}: warning:[/yellow] {escape(message)}", highlight=False)


# ------------------------------------------------------------------------------- demo


@app.command()
def demo(
    name: Annotated[str, typer.Option(help="run folder runs/<name>/ (replaced if it exists)")] = "demo",
    task: Annotated[str | None, typer.Option(
        help="the task to train: a .py file or a module name (default: examples/digits_mlp.py)")] = None,
    epochs: Annotated[int | None, typer.Option(help="local epochs per round (default 5)")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate (default 0.05)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch size (default 16)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="a task setting key=value, read by settings.get(key, default); repeat for more")] = None,
    clients: Annotated[int, typer.Option(help="number of clients N")] = 10,
    committee: Annotated[int, typer.Option(help="committee size n")] = 5,
    threshold: Annotated[int, typer.Option(help="threshold t (shares to reconstruct, votes to finalize)")] = 3,
    rounds: Annotated[int, typer.Option(help="rounds to train")] = 10,
    min_clients: Annotated[int, typer.Option(help="fewest updates a round aggregates")] = 3,
    seed: Annotated[int, typer.Option(help="seeds the data split, the initial model and training")] = 0,
    collection_period: Annotated[int, typer.Option(help="seconds a round collects updates")] = 120,
    aggregation_period: Annotated[int, typer.Option(help="seconds for each committee phase")] = 60,
    clients_per_process: Annotated[int | None, typer.Option(
        help="client agents per OS process (they share PyTorch and web3); default: clients / cores, "
             "rounded up, at most 50 (1 when there are no more clients than cores)")] = None,
    check_period: Annotated[int | None, typer.Option(
        help="seconds members have to post share checks, and again complaints (shamir mode); 0: off; "
             "default 10, off in the masked mode")] = None,
    reopen_failed: Annotated[bool, typer.Option(help="the keeper reopens a failed round")] = False,
    ipfs_hosts: Annotated[int, typer.Option(
        help="0: one shared store folder; K: K IPFS nodes peered on loopback, clients on the first, "
             "members on the others (blobs move by bitswap)")] = 0,
    aggregation: Annotated[str, typer.Option(
        help="shamir: n sealed Shamir shares per client (2n x the update); masked: one masked vector per "
             "client, seeds shared with the committee (modulus_bits/32 x the update)")] = "shamir",
    modulus_bits: Annotated[int | None, typer.Option(
        help="masked mode: the ring's bits, 32, 40, 48, 56 or 64 (default 48)")] = None,
    fractional_bits: Annotated[int, typer.Option(help="fixed-point bits of the quantized update")] = 16,
    max_samples: Annotated[int, typer.Option(
        help="the most samples one client's update may weigh (bounds the sum for the capacity check)")] = 10_000,
    block_time: Annotated[float | None, typer.Option(
        help="seconds between blocks (interval mining, as a real network; default: a block per transaction)")] = None,
) -> None:
    """Run a whole federation on a task here; write runs/<name>/report.json and accuracy.png.

    Exit status 1 if a round failed.
    """
    from agents.learning import DEFAULT_TASK
    from orchestration.demo import run_demo
    from orchestration.launcher import FederationSpec

    try:
        training = _training_settings(epochs, lr, batch_size, set_ or [])
        spec = FederationSpec(name=name, clients=clients, committee=committee, threshold=threshold, rounds=rounds,
                              min_clients=min(min_clients, clients), seed=seed, task=task or DEFAULT_TASK,
                              training=training, collection_period=collection_period,
                              aggregation_period=aggregation_period, check_period=check_period,
                              clients_per_process=clients_per_process,
                              reopen_failed=reopen_failed,
                              ipfs_hosts=ipfs_hosts, aggregation=aggregation, modulus_bits=modulus_bits,
                              fractional_bits=fractional_bits, max_samples=max_samples, block_time=block_time)
        status = run_demo(spec, console=console)
    except KeyboardInterrupt:
        errors.print("fedtss demo: interrupted; every process it started is stopped")
        raise typer.Exit(130) from None
    except FedTSSError as exc:
        raise _fail("demo", exc, 1) from None
    raise typer.Exit(status)


def _training_settings(epochs: int | None, lr: float | None, batch_size: int | None,
                       assignments: list[str]) -> Settings:
    """The task's Settings from the command line: the flags given, defaults for the rest."""
    from fedtss.errors import ConfigError
    from fedtss.task import Settings

    options: dict[str, str] = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key.strip().isidentifier():
            raise ConfigError(f"--set {assignment!r}: write key=value, the key a Python name (e.g. --set alpha=0.2)")
        options[key.strip()] = value.strip()
    given = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
    return Settings(**{key: value for key, value in given.items() if value is not None}, options=options)


# ------------------------------------------------------------------------ local chain


@app.command()
def node(
    name: Annotated[str, typer.Option(help="keep the chain in runs/<name>/chain-state.json")] = "demo",
    port: Annotated[int, typer.Option(help="JSON-RPC and WebSocket port on 127.0.0.1")] = 8545,
    accounts: Annotated[int, typer.Option(help="funded dev accounts (0 = operator)")] = 30,
    chain: Annotated[bool, typer.Option(help="serve the chain (--no-chain: only the IPFS node, with --ipfs)")] = True,
    block_time: Annotated[float | None, typer.Option(
        help="seconds between blocks (interval mining; default: a block per transaction)")] = None,
    ipfs: Annotated[bool, typer.Option(
        help="also serve an IPFS node (js-ipfs, Kubo RPC API) on runs/<name>/ipfs/")] = False,
    ipfs_port: Annotated[int, typer.Option(help="the IPFS node's RPC API port on 127.0.0.1 (0: any free)")] = 5001,
    swarm_port: Annotated[int | None, typer.Option(
        help="the IPFS node joins a swarm on this TCP port (0: any free); offline without it")] = None,
    swarm_host: Annotated[str, typer.Option(
        help="the IPv4 address the IPFS node listens for peers on (0.0.0.0: every interface)")] = "127.0.0.1",
    peer: Annotated[list[str] | None, typer.Option(
        help="a peer the IPFS node dials, /ip4/…/tcp/…/p2p/<id> (repeat for more); only these are dialled")] = None,
) -> None:
    """A local chain (anvil) that reloads and saves runs/<name>/chain-state.json, and with --ipfs
    this host's IPFS node for agents on several machines; Ctrl-C stops them.

    Reopens a finished demo: its deployment record, store and logs stay in runs/<name>/.
    """
    from orchestration.ipfs_node import JsIpfsNode
    from orchestration.node import chain_state_exists, start_local_chain

    if not chain and not ipfs:
        raise _fail("node", ConfigError("--no-chain serves nothing without --ipfs: add --ipfs"), 2)
    run_dir = _RUNS / name
    state_file = run_dir / "chain-state.json"
    reopened = chain_state_exists(state_file)
    served: list[Any] = []
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        if chain:
            served.append(dev_chain := start_local_chain(state_file, accounts=accounts, port=port, log_path=None,
                                                            block_time=block_time))
            console.print(f"anvil at {dev_chain.url} (ws://127.0.0.1:{port}), chain state "
                          f"{'reloaded from' if reopened else 'will be saved to'} {state_file}")
        if ipfs:
            ipfs_node = JsIpfsNode(run_dir / "ipfs", port=ipfs_port, swarm_port=swarm_port, peers=peer or (),
                                   swarm_host=swarm_host)
            served.append(ipfs_node)
            ipfs_node.start()
            _print_ipfs_node(ipfs_node)
        else:
            console.print(f"local store: {run_dir / 'store'} (a directory; agents open it by path)")
        deployment = run_dir / "deployment.json"
        if chain and deployment.is_file():
            console.print(f"deployment record: {deployment}  ->  fedtss status --rpc-url {dev_chain.url} "
                          f"--deployment {deployment}")
        console.print("Ctrl-C to stop" + (" (the chain state is written on the way out)" if chain else ""))
        while not stop["now"] and all(_is_running(process) for process in served):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except FedTSSError as exc:
        raise _fail("node", exc) from None
    finally:
        for process in reversed(served):
            process.stop()
    console.print(f"stopped; chain state in {state_file}" if chain else "stopped")


def _print_ipfs_node(ipfs_node: Any) -> None:
    """The node's API and, online, its peer id and swarm addresses: what other hosts' --peer take."""
    typer.echo(f"IPFS node (Kubo RPC API) at {ipfs_node.api_url}: the agents' [node] store")
    if ipfs_node.online:
        peer_id, addresses = ipfs_node.identity()
        typer.echo(f"IPFS peer {peer_id}; other hosts dial it with --peer " + " --peer ".join(addresses))


def _is_running(served: Any) -> bool:
    process = served.process  # anvil's, or the IPFS daemon's
    return process is not None and process.poll() is None


@app.command()
def deploy(
    rpc_url: Annotated[str, typer.Option(help="JSON-RPC node")] = "http://127.0.0.1:8545",
    config: Annotated[Path, typer.Option(help="deployment config (TOML)")] = Path("config/local.toml"),
    out: Annotated[Path, typer.Option(help="where to write the deployment record")] = Path("build/deployment.json"),
) -> None:
    """Compile and deploy the round contract; the key comes from FEDTSS_PRIVATE_KEY or the config."""
    from fedtss.chain.deploy import deploy as deploy_contract

    try:
        deployment = deploy_contract(rpc_url, config, out, os.environ, warn=lambda message: _warn(
            "deploy", message))
    except FedTSSError as exc:
        raise _fail("deploy", exc) from None
    console.print(f"FedTSSRounds at {deployment.address} on chain {deployment.chain_id}; record {out}")


# ----------------------------------------------------------------------------- agents


@app.command()
def client(config: Annotated[Path, typer.Option(help="the client's node config (TOML)")]) -> None:
    """Run a client agent: train on its own data and submit sealed shares each round."""
    from agents.client import build_client_agent
    from agents.runtime import main

    raise typer.Exit(main(["--config", str(config)], role="client", build=build_client_agent))


@app.command()
def aggregator(config: Annotated[Path, typer.Option(help="the member's node config (TOML)")]) -> None:
    """Run a committee member: aggregate its shares, reconstruct, vote on the model."""
    from agents.aggregator import build_aggregator_agent
    from agents.runtime import main

    raise typer.Exit(main(["--config", str(config)], role="aggregator", build=build_aggregator_agent))


@app.command()
def keeper(config: Annotated[Path, typer.Option(help="node config with \\[node] and optional \\[keeper]")]) -> None:
    """Close collection, fail stalled rounds (and reopen them if configured) by chain time."""
    from agents.keeper import build_keeper_agent
    from agents.runtime import main

    raise typer.Exit(main(["--config", str(config)], role="keeper", build=build_keeper_agent))


# ------------------------------------------------------------------------------- keys

keys = typer.Typer(no_args_is_help=True, help="New keys for a node of a real federation; secrets go to files only.")
app.add_typer(keys, name="keys")


def _refuse_existing(command: str, path: Path) -> None:
    """Say so before asking for a password; the write itself refuses too (a file may appear meanwhile)."""
    if path.exists():
        raise _fail(command, FedTSSError(f"{path} exists: a key file is never overwritten (move it away first)"))


@keys.command("account")
def new_account(
    out: Annotated[Path, typer.Option(help="keystore file to write (mode 0600; never overwritten)")],
    password_env: Annotated[str, typer.Option(help="variable holding the keystore password; "
                                                   "asked for twice when it is not set")] = "FEDTSS_KEYSTORE_PASSWORD",
) -> None:
    """A new Ethereum account in an encrypted keystore (scrypt); prints its address.

    Name the file as `keystore` in the node config; fund the address on your network, and put
    it in the deployment config (the allowlist or the committee).
    """
    from fedtss.chain.keys import new_account_key, write_keystore

    _refuse_existing("keys account", out)
    password = os.environ.get(password_env) or typer.prompt("keystore password", hide_input=True,
                                                            confirmation_prompt=True)
    try:
        address = write_keystore(out, new_account_key(), password, overwrite=False)
    except FedTSSError as exc:
        raise _fail("keys account", exc) from None
    typer.echo(f"address {address}; keystore {out}")  # plain: one line to copy, never wrapped


@keys.command("sealing")
def new_sealing_key(
    out: Annotated[Path, typer.Option(help="file for the X25519 private key, hex (mode 0600; never overwritten)")],
) -> None:
    """A committee member's new X25519 sealing key; prints the public key for the deployment config.

    Name the file as `sealing_key_file` in the member's \\[aggregator] table; put the printed public key as `sealing_key` of its \\[\\[rounds.committee]] entry.
    """
    from fedtss.chain.keys import write_sealing_key

    try:
        key = write_sealing_key(out, os.urandom(32), overwrite=False)
    except FedTSSError as exc:
        raise _fail("keys sealing", exc) from None
    typer.echo(f'sealing_key = "0x{key.public_key.hex()}"   # public; the private key is in {out}')


@keys.command("masking")
def new_masking_key(
    out: Annotated[Path, typer.Option(help="file for the X25519 private key, hex (mode 0600; never overwritten)")],
) -> None:
    """A client's new X25519 masking key (masked mode); prints the public key for the deployment config.

    Name the file as `masking_key_file` in the client's \\[client] table; add the printed public key to `client_keys` of \\[aggregation], at the client's place in the allowlist.
    """
    from fedtss.chain.keys import new_x25519_private_key, write_masking_key

    try:
        key = write_masking_key(out, new_x25519_private_key(), overwrite=False)
    except FedTSSError as exc:
        raise _fail("keys masking", exc) from None
    typer.echo(f'"0x{key.public_key.hex()}",   # this client\'s entry of client_keys; the private key is in {out}')


# ------------------------------------------------------------------------ tasks, models

task_app = typer.Typer(no_args_is_help=True, help="A task (fedtss.task): the model, data and training you bring.")
app.add_typer(task_app, name="task")
model_app = typer.Typer(no_args_is_help=True, help="The federation's models, out of fedtss.")
app.add_typer(model_app, name="model")


@task_app.command("layout")
def task_layout(
    task: Annotated[str, typer.Argument(help="a .py file or a module name")],
    data: Annotated[str | None, typer.Option(
        help="some data the task's load_data reads: its evaluate() then names the federated metrics")] = None,
) -> None:
    """Print the [model] table of a deployment config: TASK's model layout (and metrics, with --data)."""
    from agents.learning import load_task
    from orchestration.models import layout_toml, task_model_terms

    try:
        loaded = load_task(task)
        typer.echo(layout_toml(task_model_terms(loaded, data), loaded.name), nl=False)
    except FedTSSError as exc:
        raise _fail("task layout", exc, 1) from None


@model_app.command("export")
def model_export(
    which: Annotated[str, typer.Argument(metavar="ROUND|latest", help="a finalized round, or latest")],
    out: Annotated[Path, typer.Option(help="the PyTorch state dict to write (torch.save)")],
    task: Annotated[str | None, typer.Option(help="the federation's task (default: examples/digits_mlp.py)")] = None,
    store: Annotated[str | None, typer.Option(
        help="store directory or Kubo RPC URL (default: store/ beside the deployment record)")] = None,
    rpc_url: Annotated[str, typer.Option(help="JSON-RPC node")] = "http://127.0.0.1:8545",
    deployment: Annotated[Path, typer.Option(help="deployment record")] = Path("runs/demo/deployment.json"),
) -> None:
    """Write a finalized model as a state dict that the task's model() loads."""
    from agents.learning import DEFAULT_TASK
    from fedtss.chain import RoundsContract, load_deployment
    from fedtss.storage import open_store
    from orchestration.models import MODEL_MAX_BYTES, export_model, finalized_model_cid

    try:
        record = load_deployment(deployment)
        contract = RoundsContract.at(rpc_url, record)
        round_, cid = finalized_model_cid(contract, which)
        blob = open_store(store or deployment.parent / "store").get(cid, max_bytes=MODEL_MAX_BYTES)
        values = export_model(blob, task or DEFAULT_TASK, out, fixed=record.model_layout)
    except FedTSSError as exc:
        raise _fail("model export", exc, 1) from None
    label = "the initial model" if round_ == 0 else f"round {round_}'s model"
    typer.echo(f"{label} {cid} ({values:,} values) -> {out}")


# Operator commands (status, rounds, round, start, fail, reopen, wait) and the explorer.
from orchestration.explorer.command import explorer  # noqa: E402
from orchestration.operator import register as _register_operator  # noqa: E402

app.command()(explorer)
_register_operator(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
