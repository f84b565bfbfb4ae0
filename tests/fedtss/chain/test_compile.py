"""The solc-js wrapper answers like native solc, and compilation writes artifacts."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import solcx

from fedtss.chain.compile import BUILD_DIR, SOLC_VERSION, SOLC_WRAPPER, compile_contracts, load_artifact, native_solc
from fedtss.errors import ChainError


def test_wrapper_reports_the_pinned_version_the_way_py_solc_x_parses_it():
    version = solcx.wrapper.get_solc_version(SOLC_WRAPPER, with_commit_hash=True)
    assert str(version).startswith(SOLC_VERSION + "+commit.")


def test_wrapper_passes_outputs_larger_than_a_pipe_buffer_intact(tmp_path):
    # One contract's output with every selection is well over 64 KiB: solc-js alone truncates.
    source = (SOLC_WRAPPER.parents[1] / "contracts" / "FedTSSRounds.sol").read_text()
    interface = (SOLC_WRAPPER.parents[1] / "contracts" / "IFedTSSRounds.sol").read_text()
    request = {
        "language": "Solidity",
        "sources": {"FedTSSRounds.sol": {"content": source}, "IFedTSSRounds.sol": {"content": interface}},
        "settings": {"outputSelection": {"*": {"*": ["*"], "": ["ast"]}}},
    }
    out = subprocess.run(
        [str(SOLC_WRAPPER), "--standard-json"], input=json.dumps(request), capture_output=True, text=True, check=True
    ).stdout
    assert len(out) > 65536
    assert not out.startswith(">>>")
    assert "FedTSSRounds" in json.loads(out)["contracts"]["FedTSSRounds.sol"]


def test_wrapper_refuses_options_it_does_not_implement():
    result = subprocess.run([str(SOLC_WRAPPER), "--bin", "x.sol"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unsupported option" in result.stderr


def test_compile_writes_artifacts_that_load_back(tmp_path, rounds_artifact):
    artifacts = compile_contracts(build_dir=tmp_path)
    loaded = load_artifact("FedTSSRounds", build_dir=tmp_path)
    assert loaded == artifacts["FedTSSRounds"]
    assert loaded.bytecode == rounds_artifact.bytecode  # deterministic
    assert {item["name"] for item in loaded.abi if item["type"] == "function"} >= {
        "startTraining", "submitUpdate", "closeCollection", "submitAggregateShare",
        "proposeModel", "failRound", "reopenRound",
    }


def test_artifact_path_names_the_file_of_its_own_build_dir(rounds_artifact):
    # rounds_artifact was compiled into a temporary build_dir, not the repository's build/.
    assert rounds_artifact.path.parent != BUILD_DIR
    assert json.loads(rounds_artifact.path.read_text())["abi"] == rounds_artifact.abi
    assert load_artifact("FedTSSRounds", build_dir=rounds_artifact.path.parent).path == rounds_artifact.path


def test_artifact_compiled_without_a_build_dir_has_no_path(rounds_artifact):
    with pytest.raises(ChainError, match="build_dir=None"):
        replace(rounds_artifact, build_dir=None).path


def test_native_solc_and_wrapper_produce_the_same_metadata_hash(tmp_path, rounds_artifact):
    native = native_solc(SOLC_VERSION)
    if native is None:
        pytest.skip(f"no native solc {SOLC_VERSION} installed (solcx.install_solc needs internet; none on PATH); "
                    "this comparison did not run")
    by_native = compile_contracts(solc_binary=native, build_dir=None)["FedTSSRounds"]
    by_wrapper = compile_contracts(solc_binary=SOLC_WRAPPER, build_dir=None)["FedTSSRounds"]
    # The metadata hash is the CBOR tail of the runtime bytecode; equal tails mean equal metadata.
    assert by_native.deployed_bytecode[-106:] == by_wrapper.deployed_bytecode[-106:]
    assert by_native.deployed_bytecode == by_wrapper.deployed_bytecode


def _solc_on_path(tmp_path, monkeypatch, version_line: str) -> Path:
    """A stand-in ``solc`` on PATH that only answers --version (py-solc-x's install hidden)."""
    import fedtss.chain.compile as compile_module
    from solcx.exceptions import SolcNotInstalled

    def not_installed(version):
        raise SolcNotInstalled(version)

    monkeypatch.setattr(compile_module, "get_executable", not_installed)
    fake = tmp_path / "solc"
    fake.write_text(f"#!/bin/sh\necho 'solc, the solidity compiler commandline interface'\necho '{version_line}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return fake


def test_a_solc_on_path_of_the_pinned_version_is_taken_as_native(tmp_path, monkeypatch):
    fake = _solc_on_path(tmp_path, monkeypatch, f"Version: {SOLC_VERSION}+commit.abcdef12.Linux.g++")
    assert native_solc(SOLC_VERSION) == fake


def test_a_solc_on_path_of_another_version_is_ignored(tmp_path, monkeypatch):
    _solc_on_path(tmp_path, monkeypatch, "Version: 0.8.20+commit.a1b79de6.Linux.g++")
    assert native_solc(SOLC_VERSION) is None
