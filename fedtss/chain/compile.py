"""Compile the Solidity contracts through py-solc-x and write the build artifacts.

py-solc-x needs a ``solc`` executable. A native solc of the pinned version is used when one
is installed (``solcx.install_solc`` on a machine with internet); otherwise ``tools/solc``,
a small wrapper around the pinned solc-js in ``node_modules``. Both compile the same
standard-JSON input to the same bytecode and metadata (tests compare the metadata hash).

Artifacts (ABI, bytecode, metadata) are written to ``build/contracts/<Name>.json`` by
:func:`compile_contracts` only; nothing else writes there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import solcx
from solcx.install import get_executable
from solcx.exceptions import SolcError, SolcNotInstalled

from fedtss.errors import ChainError

__all__ = [
    "BUILD_DIR",
    "CONTRACTS_DIR",
    "SOLC_VERSION",
    "SOLC_WRAPPER",
    "Artifact",
    "compile_contracts",
    "compiler_input",
    "find_solc",
    "load_artifact",
    "native_solc",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
BUILD_DIR = REPO_ROOT / "build" / "contracts"
SOLC_WRAPPER = REPO_ROOT / "tools" / "solc"
SOLC_VERSION = "0.8.37"
EVM_VERSION = "prague"
OPTIMIZER_RUNS = 200


@dataclass(frozen=True)
class Artifact:
    """One compiled contract, as written to ``build/contracts/<name>.json``."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    metadata: str
    compiler: str
    #: The folder the artifact file was written to (None: not written), so that a deployment
    #: record names the ABI file of *this* compilation, not the repository's default one.
    build_dir: Path | None = field(default=BUILD_DIR, compare=False)

    @property
    def path(self) -> Path:
        """The artifact file (``<build_dir>/<name>.json``); ChainError if it was never written."""
        if self.build_dir is None:
            raise ChainError(
                f"the {self.name} artifact was compiled with build_dir=None, so no file holds it: "
                "compile with a build_dir to get a path"
            )
        return Path(self.build_dir) / f"{self.name}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "contractName": self.name,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "metadata": self.metadata,
            "compiler": self.compiler,
        }


def native_solc(version: str = SOLC_VERSION) -> Path | None:
    """A native solc of exactly ``version``: py-solc-x's install, else ``solc`` on PATH; or None.

    A ``solc`` on PATH (a package manager's, a release binary) is used only if its
    ``--version`` names ``version``: another version would compile other bytecode.
    """
    try:
        return Path(get_executable(version))
    except SolcNotInstalled:
        pass
    on_path = shutil.which("solc")
    if on_path is None or Path(on_path).resolve() == SOLC_WRAPPER.resolve():
        return None
    try:
        answer = subprocess.run([on_path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(on_path) if re.search(rf"Version: {re.escape(version)}\+", answer) else None


def find_solc(version: str = SOLC_VERSION) -> Path:
    """The solc to compile with: native if installed, otherwise the solc-js wrapper."""
    return native_solc(version) or SOLC_WRAPPER


def compiler_input(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """The standard-JSON input for every ``.sol`` file, sources inlined (no import lookups)."""
    sources = {
        path.name: {"content": path.read_text(encoding="utf-8")}
        for path in sorted(contracts_dir.glob("*.sol"))
    }
    if not sources:
        raise ChainError(f"no .sol files in {contracts_dir}")
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}
            },
        },
    }


def compile_contracts(
    *,
    solc_binary: Path | None = None,
    contracts_dir: Path = CONTRACTS_DIR,
    build_dir: Path | None = BUILD_DIR,
) -> dict[str, Artifact]:
    """Compile every contract; write one artifact file per contract unless ``build_dir`` is None."""
    binary = solc_binary or find_solc()
    try:
        version = solcx.wrapper.get_solc_version(binary, with_commit_hash=True)
        output = solcx.compile_standard(compiler_input(contracts_dir), solc_binary=binary)
    except SolcError as exc:
        raise ChainError(f"solc ({binary}) failed: {exc}") from exc
    artifacts: dict[str, Artifact] = {}
    for contracts in output["contracts"].values():
        for name, compiled in contracts.items():
            artifacts[name] = Artifact(
                name=name,
                abi=compiled["abi"],
                bytecode="0x" + compiled["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + compiled["evm"]["deployedBytecode"]["object"],
                metadata=compiled["metadata"],
                compiler=str(version),
                build_dir=build_dir,
            )
    if build_dir is not None:
        build_dir.mkdir(parents=True, exist_ok=True)
        for artifact in artifacts.values():
            (build_dir / f"{artifact.name}.json").write_text(
                json.dumps(artifact.to_json(), indent=1), encoding="utf-8"
            )
    return artifacts


def load_artifact(name: str = "FedTSSRounds", build_dir: Path = BUILD_DIR) -> Artifact:
    """Read one artifact written by :func:`compile_contracts`."""
    path = build_dir / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ChainError(f"{path} does not exist: run `python deploy.py` or compile_contracts()") from exc
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        metadata=data["metadata"],
        compiler=data["compiler"],
        build_dir=build_dir,
    )
