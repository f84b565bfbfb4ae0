"""Fixtures for the event-stream tests: a deployed contract with its deployment record, and an
anvil that can be stopped and started again on the same port with its state kept (--state)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedtss.chain import Artifact, Deployment, RoundsContract, deploy_rounds, transaction_hash
from fedtss.chain.devnode import DevNode, dev_accounts, free_port, start_anvil
from fedtss.cid import RAW, cid_from_parts
from tests.fixtures.anvil import default_rounds_config


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def cid(label: str) -> str:
    """The raw-codec CID whose digest is ``digest(label)``."""
    return cid_from_parts(RAW, digest(label))


@dataclass(frozen=True)
class Deployed:
    """A FedTSSRounds on a node: bindings, its deployment record and the accounts to drive it."""

    rounds: RoundsContract
    deployment: Deployment
    accounts: tuple[LocalAccount, ...]

    def start_training(self) -> int:
        """startTraining: TrainingStarted and RoundOpened in one block; returns that block."""
        return self.rounds.start_training(self.accounts[0], cid("model-0"), 1)["blockNumber"]

    def submit(self, client: int) -> int:
        """submitUpdate of round 1 by client ``client`` (0-based); returns its block."""
        receipt = self.rounds.submit_update(self.accounts[6 + client], 1, cid(f"update-{client}"))
        return receipt["blockNumber"]


def deploy_with_record(
    w3: Web3, accounts: tuple[LocalAccount, ...], artifact: Artifact, folder: Path, **overrides: object
) -> Deployed:
    """Deploy FedTSSRounds and write its ABI beside a Deployment record, as deploy.py does."""
    config = replace(default_rounds_config(accounts), **overrides)
    address, receipt = deploy_rounds(w3, accounts[0], artifact, config)
    abi_path = folder / "FedTSSRounds.abi.json"
    abi_path.write_text(json.dumps({"abi": artifact.abi}), encoding="utf-8")
    deployment = Deployment(
        chain_id=w3.eth.chain_id,
        address=address,
        abi_path=abi_path,
        deploy_block=receipt["blockNumber"],
        tx_hash=transaction_hash(receipt),
        config=config,
    )
    return Deployed(RoundsContract(w3, address, artifact.abi), deployment, accounts)


@pytest.fixture
def deployed(chain, rounds_artifact, tmp_path) -> Deployed:
    """A fresh contract on the session's anvil (target 3 clients, so the 3rd update closes)."""
    return deploy_with_record(chain.w3, chain.accounts, rounds_artifact, tmp_path, target_clients=3)


class RestartableAnvil:
    """anvil on a fixed port with ``--state``: :meth:`stop` dumps the chain, :meth:`start` reloads it."""

    def __init__(self, state: Path) -> None:
        self.port = free_port()
        self.state = state
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.w3 = Web3(Web3.HTTPProvider(self.http_url, request_kwargs={"timeout": 30}))
        self.node: DevNode | None = None

    def start(self) -> None:
        self.node = start_anvil(accounts=20, port=self.port, state=self.state)

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None


@pytest.fixture
def restartable_anvil(tmp_path) -> Iterator[RestartableAnvil]:
    node = RestartableAnvil(tmp_path / "anvil-state.json")
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def accounts() -> tuple[LocalAccount, ...]:
    return dev_accounts(20)
