"""The checkpoint file: resumes where it was, never goes back, refuses another deployment's file."""

from __future__ import annotations

import json

import pytest

from fedtss.chain.checkpoint import Checkpoint
from fedtss.errors import ConfigError

DEPLOYMENT = "31337:0x5FbDB2315678afecb367f032d93F642f64180aa3:0xabc"


def test_without_a_file_catch_up_starts_at_the_deploy_block(tmp_path):
    checkpoint = Checkpoint(tmp_path / "cp.json", deployment=DEPLOYMENT, start_block=17)
    assert checkpoint.block == 16
    assert not (tmp_path / "cp.json").exists()


def test_a_saved_block_is_read_back_by_a_new_process(tmp_path):
    path = tmp_path / "state" / "cp.json"
    Checkpoint(path, deployment=DEPLOYMENT, start_block=1).save(42)
    assert Checkpoint(path, deployment=DEPLOYMENT, start_block=1).block == 42
    assert json.loads(path.read_text()) == {"version": 1, "deployment": DEPLOYMENT, "block": 42}
    assert [p.name for p in path.parent.iterdir()] == ["cp.json"]  # no temporary file left behind


def test_progress_never_goes_backwards(tmp_path):
    path = tmp_path / "cp.json"
    checkpoint = Checkpoint(path, deployment=DEPLOYMENT, start_block=1)
    checkpoint.save(10)
    checkpoint.save(7)
    assert checkpoint.block == 10
    assert Checkpoint(path, deployment=DEPLOYMENT, start_block=1).block == 10


def test_a_checkpoint_of_another_deployment_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "cp.json"
    Checkpoint(path, deployment=DEPLOYMENT, start_block=1).save(5)
    with pytest.raises(ConfigError, match="belongs to another deployment") as info:
        Checkpoint(path, deployment="31337:0x0000000000000000000000000000000000000001:0xdef", start_block=1)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["", "{not json", '{"version": 1}', '{"version": 9, "deployment": "x", "block": 1}',
                                     '{"version": 1, "deployment": "%s", "block": -3}' % DEPLOYMENT])
def test_a_torn_or_foreign_file_is_refused_with_what_to_do(tmp_path, content):
    path = tmp_path / "cp.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="delete it"):
        Checkpoint(path, deployment=DEPLOYMENT, start_block=1)
