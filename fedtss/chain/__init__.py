"""The only package that imports web3: compile, deploy, transact, read views and events.

Agents, the keeper and the CLI use :class:`RoundsContract` (one method per contract
transaction and view) on a deployment record written by ``deploy.py``, and its
:attr:`~RoundsContract.chain`, a :class:`ChainReader` (blocks, transactions, receipts, the
chain's clock) that answers in plain values. A node that is away is
:class:`~fedtss.errors.ChainUnavailable` from all of them; nothing outside this package needs
a web3 type or exception. ``LocalAccount`` (the signing account type) is re-exported for
type hints.
"""

from eth_account.signers.local import LocalAccount

from fedtss.chain.compile import Artifact, compile_contracts, find_solc, load_artifact
from fedtss.chain.config import (
    AGGREGATION_MODES,
    DEFAULT_MODULUS_BITS,
    Aggregation,
    DeployerSettings,
    Member,
    ModelTerms,
    RoundsConfig,
    committee_warning,
    dev_sealing_keypair,
    load_config,
    load_model_terms,
    parse_rounds_config,
)
from fedtss.chain.contract import (
    DecodedCall,
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
    ChecksSubmitted,
    ClientSet,
    ClientsAdded,
    CollectionClosed,
    ComplaintsSubmitted,
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
    decode_event,
    event_arguments,
    events_of,
)
from fedtss.chain.reader import Block, ChainReader, Log, Receipt, Transaction, checksum_address, is_address
from fedtss.chain.redaction import display_url, redact_node_urls

__all__ = [
    "AGGREGATION_MODES",
    "DEFAULT_MODULUS_BITS",
    "EVENT_TYPES",
    "AggregateShareSubmitted",
    "Aggregation",
    "Artifact",
    "Block",
    "ChainEvent",
    "ChainReader",
    "ChecksSubmitted",
    "ClientSet",
    "ClientsAdded",
    "CollectionClosed",
    "ComplaintsSubmitted",
    "DecodedCall",
    "LocalAccount",
    "Log",
    "ModelProposed",
    "Receipt",
    "RoundEvent",
    "RoundFailed",
    "RoundFinalized",
    "RoundOpened",
    "ThresholdReached",
    "TrainingCompleted",
    "TrainingStarted",
    "Transaction",
    "UpdateSubmitted",
    "checksum_address",
    "cid_or_none",
    "event_arguments",
    "decode_event",
    "events_of",
    "DeployerSettings",
    "Deployment",
    "Member",
    "ModelTerms",
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
    "is_address",
    "load_artifact",
    "load_config",
    "load_deployment",
    "load_model_terms",
    "parse_rounds_config",
    "redact_node_urls",
    "transaction_hash",
]
