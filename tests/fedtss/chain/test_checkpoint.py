"""The checkpoint file: resumes where it was, goes back only to a fork point, refuses another
deployment's file, and still reads the version 1 format (no block hashes)."""

from __future__ import annotations

import json

import pytest

from fedtss.chain.checkpoint import BlockRef, Checkpoint, compute_fork_point, remember_blocks
from fedtss.errors import ConfigError

DEPLOYMENT = "31337:0x5FbDB2315678afecb367f032d93F642f64180aa3:0xabc"


def test_without_a_file_catch_up_starts_at_the_deploy_block(tmp_path):
    checkpoint = Checkpoint(tmp_path / "cp.json", deployment=DEPLOYMENT, start_block=17)
    assert checkpoint.block == 16
    assert not (tmp_path / "cp.json").exists()


def test_a_saved_block_is_read_back_by_a_new_process(tmp_path):
    path = tmp_path / "state" / "cp.json"
    Checkpoint(path, deployment=DEPLOYMENT, start_block=1).save(42, "0x42")
    restarted = Checkpoint(path, deployment=DEPLOYMENT, start_block=1)
    assert restarted.block == 42 and restarted.recent == (BlockRef(42, "0x42"),)
    assert json.loads(path.read_text()) == {"version": 2, "deployment": DEPLOYMENT, "block": 42,
                                            "recent": [[42, "0x42"]]}
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
                                     '{"version": 1, "deployment": "%s", "block": -3}' % DEPLOYMENT,
                                     '{"version": 2, "deployment": "%s", "block": 3, "recent": [[3]]}' % DEPLOYMENT,
                                     '{"version": 2, "deployment": "%s", "block": 3, "recent": [[3, "0x3"], [2, "0x2"]]}'
                                     % DEPLOYMENT])
def test_a_torn_or_foreign_file_is_refused_with_what_to_do(tmp_path, content):
    path = tmp_path / "cp.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="delete it"):
        Checkpoint(path, deployment=DEPLOYMENT, start_block=1)


def test_a_version_1_checkpoint_without_hashes_still_loads_and_is_upgraded_on_save(tmp_path):
    path = tmp_path / "cp.json"
    path.write_text(json.dumps({"version": 1, "deployment": DEPLOYMENT, "block": 9}))
    checkpoint = Checkpoint(path, deployment=DEPLOYMENT, start_block=1)
    assert checkpoint.block == 9 and checkpoint.recent == ()
    checkpoint.save(10, "0xa")
    assert json.loads(path.read_text())["version"] == 2
    assert Checkpoint(path, deployment=DEPLOYMENT, start_block=1).recent == (BlockRef(10, "0xa"),)


def test_rewind_forgets_the_blocks_after_the_fork_point_and_survives_a_restart(tmp_path):
    path = tmp_path / "cp.json"
    checkpoint = Checkpoint(path, deployment=DEPLOYMENT, start_block=5)
    for number in (6, 8, 9, 12):
        checkpoint.save(number, f"0x{number:x}")
    checkpoint.rewind(8)
    restarted = Checkpoint(path, deployment=DEPLOYMENT, start_block=5)
    assert restarted.block == 8 and restarted.recent == (BlockRef(6, "0x6"), BlockRef(8, "0x8"))
    restarted.rewind(-1)  # deeper than the deployment: back to just before the deploy block
    assert restarted.block == 4 and restarted.recent == ()


def test_remembered_blocks_are_bounded_and_a_new_branch_replaces_the_old_one():
    blocks = remember_blocks((), [BlockRef(n, f"0x{n}") for n in range(1, 6)], keep=3)
    assert blocks == (BlockRef(3, "0x3"), BlockRef(4, "0x4"), BlockRef(5, "0x5"))
    assert remember_blocks(blocks, [BlockRef(4, "0xnew")]) == (BlockRef(3, "0x3"), BlockRef(4, "0xnew"))


@pytest.mark.parametrize(
    ("canonical", "fork"),
    [
        ({10: "0xa", 7: "0x7", 5: "0x5"}, 10),  # nothing reorganized
        ({10: "0xother", 7: "0x7"}, 7),  # the newest block was replaced
        ({10: None, 7: "0xother", 5: "0x5"}, 5),  # the chain got shorter, and 7 was replaced too
        ({10: "0xb", 7: "0xc", 5: "0xd"}, 2),  # deeper than every remembered block: the floor
        ({}, 2),  # nothing known about the chain: nothing is trusted
    ],
)
def test_the_fork_point_is_the_newest_remembered_block_the_chain_still_has(canonical, fork):
    recent = (BlockRef(5, "0x5"), BlockRef(7, "0x7"), BlockRef(10, "0xa"))
    assert compute_fork_point(recent, canonical, floor=2) == fork
