"""Node config files: every field validated at load, errors naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.config import load_node_config
from fedtss.errors import ConfigError
from fedtss.storage import KuboStore, open_store

NODE = """
[node]
rpc_url = "ws://127.0.0.1:8545"
deployment = "runs/demo/deployment.json"
store = "runs/demo/store"
state_dir = "runs/demo/nodes/x"
"""
FEDERATION = """
[federation]
seed = 7
clip_norm = 5.0
max_clients = 32
"""
CLIENT = """
[client]
task = "examples/wine.py"
data = "runs/demo/data/client-3.npz"
index = 3
epochs = 2
"""
AGGREGATOR = """
[aggregator]
sealing_key_env = "MEMBER_KEY"
share_wait_seconds = 0.5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_client_config_loads_with_defaults_filled_in(tmp_path: Path) -> None:
    config = load_node_config(_write(tmp_path, NODE + FEDERATION + CLIENT), role="client")
    assert config.node.http_url == "http://127.0.0.1:8545"
    assert config.node.private_key_env == "FEDTSS_PRIVATE_KEY"
    assert config.federation.quantization.clip_norm == 5.0
    assert config.federation.quantization.max_clients == 32
    assert config.client is not None and config.client.training.epochs == 2
    assert config.client.task == "examples/wine.py" and config.client.data == "runs/demo/data/client-3.npz"
    assert config.client.index == 3 and config.aggregator is None


def test_task_options_reach_the_training_settings_as_text(tmp_path: Path) -> None:
    text = NODE + CLIENT + "\n[client.options]\nmomentum = 0.5\nalpha = \"0.2\"\nnesterov = true\n"
    config = load_node_config(_write(tmp_path, text), role="client")
    settings = config.client.training
    assert settings.options == {"momentum": "0.5", "alpha": "0.2", "nesterov": "true"}
    assert settings.get("momentum", 0.9) == 0.5 and settings.get("nesterov", False) is True


def test_a_client_without_a_task_trains_the_default_digits_mlp(tmp_path: Path) -> None:
    from agents.learning import DEFAULT_TASK

    config = load_node_config(_write(tmp_path, NODE + CLIENT.replace('task = "examples/wine.py"\n', "")),
                              role="client")
    assert config.client.task == DEFAULT_TASK and DEFAULT_TASK.endswith("examples/digits_mlp.py")


def test_aggregator_config_loads(tmp_path: Path) -> None:
    config = load_node_config(_write(tmp_path, NODE + FEDERATION + AGGREGATOR), role="aggregator")
    assert config.aggregator is not None
    assert config.aggregator.sealing_key_env == "MEMBER_KEY"
    assert config.aggregator.share_wait_seconds == 0.5


@pytest.mark.parametrize(
    ("text", "role", "names"),
    [
        (NODE + CLIENT.replace("epochs = 2", "epochs = 0"), "client", "[client] epochs"),
        (NODE + CLIENT.replace("epochs = 2", "epochs = true"), "client", "[client] epochs"),
        (NODE + CLIENT.replace("index = 3", ""), "client", "[client] index"),
        (NODE + CLIENT + "\n[aggregator]\n", "client", "unknown table"),
        (NODE.replace("ws://", "ftp://"), "aggregator", "[node] rpc_url"),
        (NODE.replace('store = "runs/demo/store"', ""), "aggregator", "[node] store"),
        (NODE + "max_blob_bytes = 10\n", "aggregator", "[node] max_blob_bytes"),
        (NODE + "fetch_timeout_seconds = 0\n", "aggregator", "[node] fetch_timeout_seconds"),
        (NODE + "store_timeout_seconds = inf\n", "aggregator", "[node] store_timeout_seconds"),
        (NODE + "privat_key_env = 'X'\n", "aggregator", "privat_key_env"),
        (NODE + FEDERATION.replace("5.0", "-1.0"), "aggregator", "[federation] clip_norm"),
        (NODE + "[federation]\nmax_samples = 1099511627776\n", "aggregator", "overflow the field"),
        (NODE + AGGREGATOR.replace("0.5", "-1"), "aggregator", "[aggregator] share_wait_seconds"),
        (NODE + "[node", "aggregator", "not valid TOML"),
    ],
)
def test_bad_config_is_refused_naming_file_and_field(tmp_path: Path, text: str, role: str, names: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_node_config(path, role=role)  # type: ignore[arg-type]
    assert names in str(info.value)
    assert str(path) in str(info.value)


def test_store_timeouts_from_the_node_config_reach_a_kubo_store(tmp_path: Path) -> None:
    text = NODE.replace('"runs/demo/store"', '"http://127.0.0.1:5001"')
    config = load_node_config(_write(tmp_path, text + "store_timeout_seconds = 4.5\nfetch_timeout_seconds = 9\n"),
                              role="aggregator")
    assert (config.node.store_timeout_seconds, config.node.fetch_timeout_seconds) == (4.5, 9.0)
    store = open_store(config.node.store, timeout=config.node.store_timeout_seconds,
                       fetch_timeout=config.node.fetch_timeout_seconds)
    assert isinstance(store, KuboStore) and store.fetch_timeout == 9.0
    defaults = load_node_config(_write(tmp_path, NODE), role="aggregator").node
    assert (defaults.store_timeout_seconds, defaults.fetch_timeout_seconds) == (30.0, 60.0)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_node_config(tmp_path / "absent.toml", role="client")


def test_a_config_with_several_problems_reports_all_of_them_at_once(tmp_path: Path) -> None:
    text = (NODE.replace("ws://", "ftp://").replace('store = "runs/demo/store"', "") + "privat_key_env = 'X'\n"
            + FEDERATION.replace("5.0", "-1.0")
            + CLIENT.replace("epochs = 2", "epochs = 0").replace("index = 3", "") + "options = [1]\n"
            + "\n[aggregator]\n")
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_node_config(path, role="client")
    message = str(info.value)
    assert message.startswith(f"{path}: 8 problems:\n")
    for names in ("unknown table(s) ['aggregator']", "[node] rpc_url: must start with", "[node] store: missing",
                  "[node]: unknown key(s) ['privat_key_env']", "[federation] clip_norm", "[client] epochs",
                  "[client] index: missing", "[client] options: expected a table"):
        assert names in message


def test_a_missing_table_is_reported_with_the_problems_of_the_others(tmp_path: Path) -> None:
    path = _write(tmp_path, FEDERATION.replace("max_clients = 32", "max_clients = 0") + CLIENT)
    with pytest.raises(ConfigError) as info:
        load_node_config(path, role="client")
    assert "2 problems" in str(info.value)
    assert "missing the [node] table" in str(info.value) and "[federation] max_clients" in str(info.value)
