"""Launcher pieces that need no processes: the spec's checks and the generated configs."""

from __future__ import annotations

import tomllib

import pytest

from agents.config import parse_node_config
from fedtss.errors import ConfigError
from orchestration.launcher import FederationSpec, _toml


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "../escape"}, "name"),
        ({"name": ""}, "name"),
        ({"threshold": 6}, "threshold"),
        ({"threshold": 1}, "threshold"),
        ({"committee": 1, "threshold": 1}, "committee"),
        ({"clients": 1}, "clients"),
        ({"min_clients": 11}, "min_clients"),
        ({"rounds": 0}, "rounds"),
    ],
)
def test_a_federation_spec_refuses_bad_sizes_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FederationSpec(**overrides)


def test_the_default_spec_is_the_issues_default_federation() -> None:
    spec = FederationSpec()
    assert (spec.name, spec.clients, spec.committee, spec.threshold, spec.rounds) == ("demo", 10, 5, 3, 10)
    assert spec.accounts == 16


def test_generated_toml_parses_back_and_is_a_valid_node_config(tmp_path) -> None:
    document = {
        "node": {"rpc_url": "ws://127.0.0.1:8545", "deployment": str(tmp_path / 'd "x".json'),
                 "store": str(tmp_path / "store"), "state_dir": str(tmp_path / "n")},
        "federation": {"seed": 7, "clip_norm": 10.0, "hidden": 64},
        "client": {"data": "c.npz", "index": 2, "learning_rate": 0.05},
    }
    parsed = tomllib.loads(_toml(document))
    assert parsed == document
    config = parse_node_config(parsed, role="client", path=tmp_path / "client-2.toml")
    assert config.client.index == 2 and config.node.http_url == "http://127.0.0.1:8545"
