"""The fedtss CLI: every subcommand is there, and errors are one line that says what to change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.launcher import PROJECT_ROOT

runner = CliRunner()


def test_every_subcommand_the_issue_lists_is_there() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "node", "deploy", "client", "aggregator", "keeper", "start", "status"):
        assert command in result.output


def test_status_without_a_deployment_record_says_which_file_is_missing(tmp_path) -> None:
    result = runner.invoke(app, ["status", "--deployment", str(tmp_path / "none.json")])
    assert result.exit_code == 2
    assert "none.json" in result.output and "Traceback" not in result.output
    assert "--deployment" in result.output  # names the flag that fixes it


def test_status_with_no_node_running_names_the_url_and_the_flag_in_a_few_lines(two_round_federation) -> None:
    from fedtss.chain.devnode import free_port

    record = two_round_federation.deployment_path
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = runner.invoke(app, ["status", "--rpc-url", url, "--deployment", str(record)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert url in result.output and "--rpc-url" in result.output and "connection refused" in result.output
    assert "HTTPConnectionPool" not in result.output


def test_demo_refuses_a_threshold_above_the_committee_before_starting_anything(tmp_path) -> None:
    result = runner.invoke(app, ["demo", "--name", "x", "--committee", "3", "--threshold", "4"])
    assert result.exit_code == 1
    assert "threshold" in result.output


def test_keeper_with_a_bad_config_exits_with_a_message(tmp_path) -> None:
    config = tmp_path / "keeper.toml"
    config.write_text("[keeper]\n")
    result = runner.invoke(app, ["keeper", "--config", str(config)])
    assert result.exit_code == 1  # as every agent's: the runtime logs stopped=ConfigError naming the table



def test_help_texts_keep_their_bracketed_config_sections() -> None:
    result = runner.invoke(app, ["start", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "[federation] seed" in result.output and "--task" in result.output
    keeper = runner.invoke(app, ["keeper", "--help"], terminal_width=200)
    assert "[node] and optional [keeper]" in keeper.output


def test_an_error_naming_a_toml_table_keeps_the_table_name(tmp_path) -> None:
    config = tmp_path / "deploy.toml"
    config.write_text("[deployer]\n")
    result = runner.invoke(app, ["deploy", "--config", str(config), "--rpc-url", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "missing the [rounds] table" in " ".join(result.output.split())


def test_keys_sealing_writes_a_private_file_whose_key_the_member_loads_and_prints_its_public_key(tmp_path) -> None:
    from fedtss.chain.keys import load_sealing_key

    out = tmp_path / "member.key"
    result = runner.invoke(app, ["keys", "sealing", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o077 == 0
    key = load_sealing_key(key_file=out, environ={})
    assert f'sealing_key = "0x{key.public_key.hex()}"' in result.output
    assert key.private_key.hex() not in result.output


def test_keys_masking_writes_a_private_file_whose_key_the_client_loads_and_prints_its_public_key(tmp_path) -> None:
    from fedtss.chain.keys import load_masking_key

    out = tmp_path / "client.masking.key"
    result = runner.invoke(app, ["keys", "masking", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o077 == 0
    key = load_masking_key(key_file=out, environ={})
    assert f'"0x{key.public_key.hex()}"' in result.output and key.private_key.hex() not in result.output
    again = runner.invoke(app, ["keys", "masking", "--out", str(out)])
    assert again.exit_code != 0 and "never overwritten" in " ".join(again.output.split())
    assert load_masking_key(key_file=out, environ={}) == key


def test_keys_account_writes_a_keystore_the_node_loads_and_never_overwrites_one(tmp_path) -> None:
    from fedtss.chain.keys import load_account

    out = tmp_path / "client.json"
    result = runner.invoke(app, ["keys", "account", "--out", str(out)], env={"FEDTSS_KEYSTORE_PASSWORD": "pw"})
    assert result.exit_code == 0, result.output
    account = load_account(keystore=out, environ={"FEDTSS_KEYSTORE_PASSWORD": "pw"})
    assert f"address {account.address}" in result.output
    before = out.read_bytes()
    again = runner.invoke(app, ["keys", "account", "--out", str(out)], env={"FEDTSS_KEYSTORE_PASSWORD": "pw"})
    assert again.exit_code == 2 and "never overwritten" in again.output
    assert out.read_bytes() == before


def test_demo_warns_when_the_committee_cannot_correct_one_wrong_member(tmp_path, monkeypatch) -> None:
    """The warning comes before the run starts; prepare() is replaced by a failure only so
    that the test ends there instead of running a whole demo."""
    from fedtss.errors import FedTSSError
    from orchestration.launcher import LocalFederation

    def stop_here(self: LocalFederation) -> None:
        raise FedTSSError("stopped by the test before anything started")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(LocalFederation, "prepare", stop_here)
    fragile = runner.invoke(app, ["demo", "--name", "x", "--committee", "3", "--threshold", "2"])
    said = " ".join(fragile.output.split())  # rich wraps the console's lines
    assert "warning: a committee of n=3 with threshold t=2 cannot correct a single wrong member" in said
    assert "stopped by the test" in said
    sound = runner.invoke(app, ["demo", "--name", "x", "--committee", "4", "--threshold", "2"])
    said = " ".join(sound.output.split())
    assert "stopped by the test" in said and "cannot correct" not in said


_NODE_WITHOUT_RECORD = """
[node]
rpc_url = "ws://127.0.0.1:1"
deployment = "{record}"
store = "{folder}/store"
state_dir = "{folder}/state"
"""


@pytest.mark.parametrize("entry_point", ["client", "aggregator", "keeper", "status", "round", "explorer"])
def test_every_entry_point_given_a_missing_deployment_record_says_so_in_one_line(tmp_path, entry_point: str) -> None:
    """Each process as a user starts it: the record's path and how to get a record, on one line
    (an agent used to take the missing file for a node outage and print an 88-line traceback)."""
    record = tmp_path / "nowhere" / "deployment.json"
    config = tmp_path / "node.toml"
    config.write_text(_NODE_WITHOUT_RECORD.format(record=record, folder=tmp_path)
                      + {"client": '[client]\ndata = "d.npz"\nindex = 0\n', "aggregator": "[aggregator]\n"}
                      .get(entry_point, ""))
    command = {
        "client": ["-m", "agents.client", "--config", str(config)],
        "aggregator": ["-m", "agents.aggregator", "--config", str(config)],
        "keeper": ["-m", "agents.keeper", "--config", str(config)],
        "status": ["-m", "orchestration.cli", "status", "--deployment", str(record)],
        "round": ["-m", "orchestration.cli", "round", "1", "--deployment", str(record)],
        "explorer": ["-m", "orchestration.cli", "explorer", "--rpc-url", "http://127.0.0.1:1", "--deployment",
                     str(record)],
    }[entry_point]
    environment = {**os.environ, "COLUMNS": "500", "FEDTSS_PRIVATE_KEY": "0x" + "11" * 32,
                   "FEDTSS_SEALING_KEY": "22" * 32}
    done = subprocess.run([sys.executable, *command], cwd=PROJECT_ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1, lines[:12]
    assert str(record) in lines[0] and "`fedtss deploy`" in lines[0]  # what to do about it


def test_deploy_given_a_missing_config_says_so_in_one_line(tmp_path) -> None:
    absent = tmp_path / "absent.toml"
    done = subprocess.run([sys.executable, "deploy.py", "--config", str(absent), "--rpc-url", "http://127.0.0.1:1",
                           "--out", str(tmp_path / "d.json")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stdout == "" and done.stderr.strip().count("\n") == 0
    assert str(absent) in done.stderr and "--config" in done.stderr


# ------------------------------------------------------------------ demo --task errors


_GOOD_TASK = """
import numpy as np
from torch import nn

def model():
    return nn.Linear(2, 2)

def load_data(source):
    return np.load(source)["x"]

def train(model, data, settings):
    return 1

def evaluate(model, data):
    return {"loss": 0.0}

def partition(num_clients, seed, settings):
    return [{"x": np.zeros((3, 2))} for _ in range(num_clients)], None
"""


@pytest.mark.parametrize(
    ("task_text", "arguments", "expected"),
    [
        (None, [], "no such file"),
        (_GOOD_TASK.replace("def load_data", "def _load_data"), [], "defines no load_data()"),
        (_GOOD_TASK.replace("return nn.Linear(2, 2)", "raise RuntimeError('no GPU here')"), [],
         "model() raised RuntimeError: no GPU here (task.py:"),
        (_GOOD_TASK.replace("import numpy as np", "import numpy as np\nimport not_installed_anywhere"), [],
         "importing it raised ModuleNotFoundError"),
        (_GOOD_TASK.replace('return np.load(source)["x"]', 'return np.load(source)["missing"]'), [],
         "load_data() raised KeyError"),
        (_GOOD_TASK.replace("def partition", "def _partition"), [], "defines no partition("),
        (_GOOD_TASK, ["--set", "alpha"], "--set 'alpha': write key=value"),
        (_GOOD_TASK, ["--epochs", "0"], "epochs must be a whole number >= 1"),
    ],
)
def test_demo_with_an_unusable_task_stops_before_starting_anything_with_one_line_naming_the_task(
    tmp_path, task_text: str | None, arguments: list[str], expected: str
) -> None:
    task = tmp_path / "task.py"
    if task_text is not None:
        task.write_text(task_text, encoding="utf-8")
    run_dir = PROJECT_ROOT / "runs" / "test-bad-task"
    try:
        result = runner.invoke(app, ["demo", "--task", str(task), "--name", run_dir.name, *arguments],
                               terminal_width=500, env={"COLUMNS": "500"})
        assert not (run_dir / "logs" / "anvil.log").exists()  # no chain, no process was started
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert expected in message, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("fedtss demo:")]
    assert "Traceback" not in result.output and len(errors) == 1 and expected in errors[0], result.output
    if not arguments:
        assert f"task {task}:" in message


def _started_node(tmp_path, name: str, *options: str) -> tuple[subprocess.Popen[str], str]:
    """``fedtss node --no-chain --ipfs`` in ``tmp_path``, once it prints its API; (process, output)."""
    import select
    import time

    process = subprocess.Popen([str(Path(sys.executable).with_name("fedtss")), "node", "--name", name, "--no-chain",
                                "--ipfs", "--ipfs-port", "0", "--swarm-port", "0", *options],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, deadline = "", time.monotonic() + 90
    while "Ctrl-C to stop" not in seen:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"fedtss node did not start: {seen}{process.stdout.read()}")
        if select.select([process.stdout], [], [], 1.0)[0]:
            seen += process.stdout.readline()
    return process, seen


@pytest.mark.slow  # two js-ipfs daemons (about 15 s)
def test_fedtss_node_serves_an_ipfs_node_that_another_hosts_node_fetches_from_by_bitswap(tmp_path) -> None:
    import re
    import signal

    from fedtss.storage import KuboStore

    first, said = _started_node(tmp_path, "host-a")
    api_a = re.search(r"Kubo RPC API\) at (http://\S+):", said).group(1)
    address = re.search(r"--peer (/ip4/127\.0\.0\.1/tcp/\d+/p2p/\w+)", said).group(1)
    second, said_b = _started_node(tmp_path, "host-b", "--peer", address)
    try:
        api_b = re.search(r"Kubo RPC API\) at (http://\S+):", said_b).group(1)
        blob = os.urandom(300_000)
        cid = KuboStore(api_a).put(blob)
        assert KuboStore(api_b, fetch_timeout=30.0).get(cid, max_bytes=1 << 20) == blob  # came by bitswap
        assert (tmp_path / "runs" / "host-a" / "ipfs" / "repo").is_dir()
    finally:
        for process in (second, first):
            process.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0 and first.wait(timeout=30) == 0


def test_fedtss_node_without_chain_or_ipfs_says_what_to_add() -> None:
    result = runner.invoke(app, ["node", "--no-chain"])
    assert result.exit_code == 2 and "add --ipfs" in " ".join(result.output.split())
