"""The only package that imports web3: compile, deploy, transact, read views and events.

Agents, the keeper and the CLI use :class:`RoundsContract` (one method per contract
transaction and view) on a deployment record written by ``deploy.py``.
"""

from fedtss.chain.compile import Artifact, compile_contracts, find_solc, load_artifact
from fedtss.chain.config import (
    DeployerSettings,
    Member,
    RoundsConfig,
    committee_warning,
    dev_sealing_keypair,
    load_config,
    parse_rounds_config,
)
from fedtss.chain.contract import (
    ChainEvent,
    Deployment,
    RoundInfo,
    RoundsContract,
    RoundState,
    connect,
    deploy_rounds,
    load_deployment,
    transaction_hash,
)
from fedtss.chain.redaction import display_url, redact_node_urls

__all__ = [
    "Artifact",
    "ChainEvent",
    "DeployerSettings",
    "Deployment",
    "Member",
    "RoundInfo",
    "RoundState",
    "RoundsConfig",
    "RoundsContract",
    "committee_warning",
    "compile_contracts",
    "connect",
    "deploy_rounds",
    "dev_sealing_keypair",
    "display_url",
    "find_solc",
    "load_artifact",
    "load_config",
    "load_deployment",
    "parse_rounds_config",
    "redact_node_urls",
    "transaction_hash",
]
