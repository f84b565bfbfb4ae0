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
    Deployment,
    RoundInfo,
    RoundsContract,
    connect,
    deploy_rounds,
    load_deployment,
    transaction_hash,
)
from fedtss.chain.contract_events import (
    EVENT_TYPES,
    AggregateShareSubmitted,
    ChainEvent,
    ClientSet,
    CollectionClosed,
    ModelProposed,
    RoundEvent,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundState,
    ThresholdReached,
    TrainingCompleted,
    TrainingStarted,
    UpdateSubmitted,
    cid_or_none,
    event_arguments,
    events_of,
)
from fedtss.chain.redaction import display_url, redact_node_urls

__all__ = [
    "EVENT_TYPES",
    "AggregateShareSubmitted",
    "Artifact",
    "ChainEvent",
    "ClientSet",
    "CollectionClosed",
    "ModelProposed",
    "RoundEvent",
    "RoundFailed",
    "RoundFinalized",
    "RoundOpened",
    "ThresholdReached",
    "TrainingCompleted",
    "TrainingStarted",
    "UpdateSubmitted",
    "cid_or_none",
    "event_arguments",
    "decode_event",
    "events_of",
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
