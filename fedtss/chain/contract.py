"""Bindings for the round contract: connect, deploy, send transactions, read views and events.

Every transaction is signed locally by an eth-account ``LocalAccount`` (so the same code talks
to anvil and to any JSON-RPC node). A revert comes back as :class:`ContractRevert` with the
custom error's name and named arguments, e.g. ``RoundWrongState(round=3, expectedStates=
(RoundState.Collecting,), actual=RoundState.Aggregating)``.

A node that cannot be reached, times out or refuses a transaction is
:class:`~fedtss.errors.ChainUnavailable`, from every method that asks the node (transactions,
views, logs) and from :func:`connect`: a caller retries on that class alone. Reads that are not
about the contract (blocks, receipts, the chain's clock) are :attr:`RoundsContract.chain`, a
:class:`~fedtss.chain.reader.ChainReader` on the same connection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError, EncodingError
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, ContractPanicError, Web3Exception, Web3RPCError
from web3.types import RPCEndpoint

from fedtss.chain._failures import BAD_ANSWERS, NODE_FAILURES, node_error
from fedtss.chain._views import ASK_WEB3, abi_type as _abi_type, call_codecs, event_codecs, read_view
from fedtss.chain.compile import Artifact
from fedtss.chain.contract_events import ChainEvent, ClientSet, RoundEvent, RoundState, decode_event
from fedtss.chain.config import AGGREGATION_MODES, Aggregation, ModelTerms, RoundsConfig, parse_rounds_config
from fedtss.chain.reader import ChainReader, Log, Receipt, Transaction, http_web3, log_from_rpc
from fedtss.chain.redaction import display_url, redact_urls
from fedtss.cid import cid_from_parts, cid_to_parts
from fedtss.errors import ChainError, ChainUnavailable, ConfigError, ContractRevert
from fedtss.formats import ModelLayout

__all__ = [
    "ChainEvent",
    "DecodedCall",
    "Deployment",
    "RoundInfo",
    "RoundState",
    "RoundsContract",
    "connect",
    "deploy_rounds",
    "load_deployment",
    "transaction_hash",
]

#: Gas added to every estimate: a vote estimated as ordinary can become the finalizing one
#: (and a share the threshold one) if other transactions land first.
GAS_HEADROOM = 150_000

_E = TypeVar("_E", bound=ChainEvent)

#: Everything decoding calldata can raise: a selector of no function, short or garbled arguments.
_CALL_DECODING_ERRORS = (DecodingError, Web3Exception, ValueError, TypeError, OverflowError)


@dataclass(frozen=True)
class RoundInfo:
    """``IFedTSSRounds.RoundInfo``: one round's state, counts and deadlines."""

    state: RoundState
    state_at_failure: RoundState
    clients: int
    shares: int
    votes: int
    collection_deadline: int
    committee_deadline: int
    included_clients: ClientSet


@dataclass(frozen=True)
class Deployment:
    """The deployment record written by ``deploy.py`` and read by agents."""

    chain_id: int
    address: str
    abi_path: Path
    deploy_block: int
    tx_hash: str
    config: RoundsConfig
    #: The model's layout and metrics, fixed at deployment (None: not fixed, so each agent only
    #: checks that a model fits its own task, and clients share no federated evaluation).
    model: ModelTerms | None = None

    @property
    def aggregation(self) -> Aggregation:
        """The aggregation mode the deployment fixed (the contract's ``aggregation()`` says the same)."""
        return self.config.aggregation

    @property
    def model_layout(self) -> ModelLayout | None:
        return None if self.model is None else self.model.layout

    @property
    def model_metrics(self) -> tuple[str, ...]:
        return () if self.model is None else self.model.metrics

    def to_json(self, relative_to: Path) -> dict[str, Any]:
        record = {
            "chain_id": self.chain_id,
            "address": self.address,
            "abi_path": os.path.relpath(self.abi_path, relative_to),
            "deploy_block": self.deploy_block,
            "tx_hash": self.tx_hash,
            "config": self.config.to_json(),
        }
        if self.model is not None:
            record["model"] = self.model.to_json()
        return record

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(path.parent.resolve()), indent=2) + "\n", encoding="utf-8")


def load_deployment(path: Path) -> Deployment:
    """Read a deployment record; ``abi_path`` is resolved relative to the record's folder.

    A record that is not there (or not a readable file) is a :class:`ConfigError` that says
    how to get one: it is a wrong path or a missing deployment, never worth retrying.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no deployment record at {path}: deploy first (`fedtss deploy` or `python deploy.py "
                          "--out FILE`; `fedtss demo` writes runs/<name>/deployment.json), or fix the "
                          "deployment path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read the deployment record {path}: {reason}") from None
    try:
        data = json.loads(text)
        return Deployment(
            chain_id=int(data["chain_id"]),
            address=to_checksum_address(data["address"]),
            abi_path=(Path(path).parent / data["abi_path"]).resolve(),
            deploy_block=int(data["deploy_block"]),
            tx_hash=str(data["tx_hash"]),
            config=parse_rounds_config(data["config"]),
            model=ModelTerms.from_json(data["model"], str(path)) if "model" in data else None,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChainError(f"cannot read deployment record {path}: {exc}") from exc


def transaction_hash(receipt_or_log: Mapping[str, Any]) -> str:
    """The ``0x``-hex hash of the transaction of a receipt or a log: how records and log lines
    name a transaction (web3 returns HexBytes, whose ``hex()`` has no ``0x`` prefix)."""
    return "0x" + bytes(receipt_or_log["transactionHash"]).hex()


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A Web3 on ``rpc_url`` (http(s) JSON-RPC), checked to answer; ChainUnavailable if it does not.

    Callers pass it on (to :class:`RoundsContract`, :func:`deploy_rounds`) without reaching
    into it. The URL's path and query (where a hosted node's API key lives) are kept out of log
    lines (:func:`~fedtss.chain.redaction.redact_node_urls`) and out of the error.
    """
    w3 = http_web3(rpc_url, timeout=timeout)
    try:
        w3.eth.chain_id
    except (*NODE_FAILURES, *BAD_ANSWERS) as exc:
        error = ChainUnavailable if isinstance(exc, NODE_FAILURES) else ChainError
        detail = redact_urls(str(exc), rpc_url)
        raise error(f"no Ethereum JSON-RPC node answers at {display_url(rpc_url)}: {detail}") from None
    return w3


#: Clients allowlisted per transaction when deploying: the constructor and ``addClients`` store
#: about 45k gas per client (67k in the masked mode, its key too), so 150 stay under 10.1M gas
#: (and the constructor's 2.8M of code storage), under a 30M block and under EIP-7825's 2**24
#: (16.8M) per-transaction cap in both modes.
ALLOWLIST_BATCH = 150


def deploy_rounds(w3: Web3, account: LocalAccount, artifact: Artifact, config: RoundsConfig) -> tuple[str, dict]:
    """Deploy ``FedTSSRounds`` with ``config``; return its address and the deployment's receipt.

    An allowlist longer than :data:`ALLOWLIST_BATCH` is deployed with its first batch, the rest
    added by ``addClients`` in batches before this returns: the contract is complete once
    deployed (``startTraining``, not the constructor, checks ``min_clients`` against it).
    """
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    decoder = _RevertDecoder(artifact.abi)
    first = ALLOWLIST_BATCH
    head = replace(config, clients=config.clients[:first], client_keys=config.client_keys[:first])
    receipt = _send(w3, account, factory.constructor(head.constructor_arg()), decoder)
    address = to_checksum_address(receipt["contractAddress"])
    rounds = RoundsContract(w3, address, artifact.abi)
    for start in range(first, len(config.clients), ALLOWLIST_BATCH):
        end = start + ALLOWLIST_BATCH
        try:
            rounds.add_clients(account, config.clients[start:end], config.client_keys[start:end])
        except ChainError as exc:
            # The contract exists and holds a prefix of the allowlist: say so, or an operator
            # could open training on it and leave the rest of the clients out for good.
            raise ChainError(f"FedTSSRounds deployed at {address}, but it allowlists only the first {start} of "
                            f"{len(config.clients)} clients: adding the next batch failed ({exc}); add the rest "
                            "with addClients before opening training, or deploy again") from exc
    return address, receipt


class RoundsContract:
    """The round contract at ``address``: one method per transaction and per view."""

    def __init__(self, w3: Web3, address: str, abi: list[dict[str, Any]]) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=abi)
        self._decoder = _RevertDecoder(abi)
        #: Views read without web3's per-call machinery (fedtss.chain._views).
        self._views = call_codecs(abi)
        self._calls = call_codecs(abi, transactions=True)
        #: Events decoded with eth_abi (web3's process_log takes ~1 ms of CPU per log).
        self._event_codecs = event_codecs(abi)
        #: 4-byte selector -> function name (web3's get_function_by_selector searches the ABI each time).
        self._functions_by_selector = {function_abi_to_4byte_selector(item): item["name"]
                                       for item in abi if item["type"] == "function"}
        #: Topic 0 (lowercase 0x hex) -> event name.
        self._events_by_topic = {_topic(item): item["name"] for item in abi if item["type"] == "event"}
        #: Event name -> topic 0, for the events whose first indexed argument is ``round``.
        self._round_topics = {
            item["name"]: _topic(item) for item in abi if item["type"] == "event" and _first_indexed(item) == "round"
        }
        self._chain: ChainReader | None = None
        #: Views of what the constructor fixed for good (``_FIXED_VIEWS``), read once.
        self._fixed: dict[str, Any] = {}

    @property
    def event_topics(self) -> dict[str, str]:
        """Event name -> its first topic (the hash of its signature, lowercase ``0x`` hex)."""
        return {name: topic for topic, name in self._events_by_topic.items()}

    @property
    def chain(self) -> ChainReader:
        """The node's chain (blocks, receipts, the chain's clock) on this contract's connection."""
        if self._chain is None:
            self._chain = ChainReader(self.w3)
        return self._chain

    @classmethod
    def at(cls, rpc_url: str, deployment: Deployment, *, timeout: float = 30.0) -> RoundsContract:
        """The deployment's contract on the node at ``rpc_url``; nothing is asked yet, so a node
        that is away shows at the first call, as ChainUnavailable (the explorer starts anyway)."""
        return cls.from_deployment(http_web3(rpc_url, timeout=timeout), deployment)

    @classmethod
    def from_deployment(cls, w3: Web3, deployment: Deployment) -> RoundsContract:
        try:
            abi = json.loads(deployment.abi_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"cannot read the contract ABI {deployment.abi_path} that the deployment record "
                              f"names ({reason}): compile again (`python deploy.py` writes build/) or "
                              "restore the file") from None
        return cls(w3, deployment.address, abi["abi"] if isinstance(abi, dict) else abi)

    # -------------------------------------------------------------------- transactions

    def transact(self, account: LocalAccount, function: str, *args: Any) -> dict:
        """Sign and send ``function(*args)``; return the receipt or raise ContractRevert."""
        return _send(self.w3, account, self.contract.functions[function](*args), self._decoder,
                     data=self._encoded(function, args))

    def _encoded(self, function: str, args: Sequence[Any]) -> str | None:
        """``function(*args)`` ABI-encoded by eth_abi; None for an argument web3 would refuse or
        that eth_abi cannot encode as it stands: web3 then builds the transaction, or says why not."""
        codec = self._calls.get(function)
        try:
            return None if codec is None else codec.encode(args)
        except (EncodingError, TypeError, ValueError, OverflowError):
            return None

    def add_clients(self, account: LocalAccount, clients: Sequence[str], client_keys: Sequence[bytes] = ()) -> dict:
        """Allowlist ``clients`` (with their masking keys in the masked mode) before training starts."""
        return self.transact(account, "addClients", list(clients), [bytes(key) for key in client_keys])

    def start_training(self, account: LocalAccount, model_cid: str, rounds: int) -> dict:
        return self.transact(account, "startTraining", *cid_to_parts(model_cid), rounds)

    def submit_update(self, account: LocalAccount, round_: int, manifest_cid: str) -> dict:
        return self.transact(account, "submitUpdate", round_, *cid_to_parts(manifest_cid))

    def close_collection(self, account: LocalAccount, round_: int) -> dict:
        return self.transact(account, "closeCollection", round_)

    def submit_aggregate_share(
        self, account: LocalAccount, round_: int, share_cid: str, included_clients: ClientSet
    ) -> dict:
        return self.transact(account, "submitAggregateShare", round_, *cid_to_parts(share_cid),
                             included_clients.words())

    def submit_checks(self, account: LocalAccount, round_: int, checks: bytes) -> dict:
        """Post the member's share checks of ``round_``: 24 bytes per client in submission order
        (projection, count share, norm value; :func:`fedtss.validation.encode_checks`)."""
        return self.transact(account, "submitChecks", round_, bytes(checks))

    def submit_complaints(self, account: LocalAccount, round_: int, complaints: Sequence[tuple[int, bytes]]) -> dict:
        """Post the member's complaints of ``round_``: ``(client index, evidence)`` pairs, in the
        order given; the evidence is a share's 32-byte AES key or a 96-byte proven X25519 secret
        (:mod:`fedtss.decryption_proof`); no pairs says the member has nothing to show. Other
        lengths are a caller's mistake (ValueError, nothing sent)."""
        for index, evidence in complaints:
            if len(evidence) not in (32, 96):
                raise ValueError(f"the evidence of the complaint about client {index} is {len(evidence)} bytes, "
                                 "not 32 (a key) or 96 (a proven secret)")
        return self.transact(account, "submitComplaints", round_, [index for index, _ in complaints],
                             [bytes(evidence) for _, evidence in complaints])

    def propose_model(self, account: LocalAccount, round_: int, model_cid: str) -> dict:
        return self.transact(account, "proposeModel", round_, *cid_to_parts(model_cid))

    def fail_round(self, account: LocalAccount, round_: int) -> dict:
        return self.transact(account, "failRound", round_)

    def reopen_round(self, account: LocalAccount, round_: int) -> dict:
        return self.transact(account, "reopenRound", round_)

    # --------------------------------------------------------------------------- views

    def explain_revert(self, tx: Transaction) -> ChainError | None:
        """Why a mined transaction to this contract reverted, by replaying it read-only.

        The call is re-run with ``eth_call`` (nothing is signed or sent) on the state after its
        block, where a lost race (a deadline passed, a round moved on) reverts again, then on
        the state before it; the first revert's custom error is decoded. None when neither
        replay reverts, the node keeps no such state, or ``tx`` is not mined.
        """
        if tx.block_number is None:
            return None
        call = {"from": tx.sender, "to": tx.to, "data": tx.input, "value": tx.value}
        block = tx.block_number
        return _replayed_error(lambda at: self.w3.eth.call(call, block_identifier=at), (block, block - 1),
                               self._decoder)

    def call(self, function: str, *args: Any, block: int | str = "latest") -> Any:
        """Read a view on the state after ``block`` (a number, or "latest"); a revert becomes
        ContractRevert, a node away ChainUnavailable. A block below the head reads state that
        k confirmations made final."""
        codec = self._views.get(function)
        if codec is not None:
            try:
                value = read_view(self.w3, self.address, codec, args, block)
            except (*NODE_FAILURES, *BAD_ANSWERS) as exc:
                raise node_error(exc, self.chain.rpc_url, function) from exc
            if value is not ASK_WEB3:
                return value
        bound = self.contract.functions[function](*args)
        try:
            return bound.call(block_identifier=block)
        except ContractLogicError as exc:
            raise self._decoder.decode(exc) from exc
        except (*NODE_FAILURES, *BAD_ANSWERS) as exc:
            raise node_error(exc, self.chain.rpc_url, function) from exc

    def current_round(self, *, block: int | str = "latest") -> int:
        return self.call("currentRound", block=block)

    def state(self, round_: int) -> RoundState:
        return RoundState(self.call("state", round_))

    def round_info(self, round_: int, *, block: int | str = "latest") -> RoundInfo:
        state, failed_from, *counts_and_deadlines, included = self.call("roundInfo", round_, block=block)
        return RoundInfo(RoundState(state), RoundState(failed_from), *counts_and_deadlines, ClientSet.from_words(included))

    def latest_model(self, *, block: int | str = "latest") -> tuple[int, str | None]:
        """``(finalized round or 0 for the initial model, its CID)``; the CID is None before
        training starts (the contract then holds no model)."""
        round_, codec, digest = self.call("latestModel", block=block)
        return round_, cid_from_parts(codec, bytes(digest)) if any(bytes(digest)) else None

    def training_progress(self) -> tuple[int, int]:
        return tuple(self.call("trainingProgress"))

    def fixed_view(self, function: str) -> Any:
        """A view of what only the constructor sets (the committee, the threshold, the check period,
        the aggregation mode), read from the node once per contract object: agents ask for them
        in every round, and each request is 10-30 ms on a busy machine."""
        if function not in _FIXED_VIEWS:
            raise ValueError(f"{function} is not fixed at deployment; read it with call()")
        if function not in self._fixed:
            self._fixed[function] = self.call(function)
        return self._fixed[function]

    def committee(self) -> list[tuple[str, bytes]]:
        """``[(member address, X25519 public key)]`` in index order (member j at j-1)."""
        members, keys = self.fixed_view("committee")
        return list(zip(members, keys, strict=True))

    def threshold(self) -> int:
        return self.fixed_view("threshold")

    def member(self, account: str) -> tuple[int, int, int]:
        """``(1-based index or 0, last share round, last vote round)``."""
        return tuple(self.call("member", account))

    def member_checks(self, account: str) -> tuple[int, int]:
        """``(last round with checks, last round with complaints)`` of ``account``; 0 if never."""
        return tuple(self.call("memberChecks", account))

    def check_period(self) -> int:
        """Seconds members have to post checks after collection closes, and again complaints (0: off)."""
        return self.fixed_view("checkPeriod")

    def check_window(self, round_: int, *, block: int | str = "latest") -> tuple[int, int]:
        """``(checks deadline, complaints deadline)`` of ``round_``: ``(0, 0)`` unless the deployment
        has checks and the round is Aggregating (:meth:`RoundsConfig.check_window` gives them for any
        round from its ``CollectionClosed``)."""
        return tuple(self.call("checkWindow", round_, block=block))

    def clients(self) -> list[str]:
        return self.call("clients")

    def aggregation(self) -> Aggregation:
        """The deployment's aggregation mode: "shamir" (modulus_bits 0) or "masked" and its ring's bits."""
        return Aggregation.from_contract(*self.fixed_view("aggregation"))

    def client_keys(self) -> list[bytes]:
        """The clients' X25519 masking keys in allowlist order (the masked mode; [] in the Shamir mode)."""
        return [bytes(key) for key in self.call("clientKeys")]

    def submitters(self, round_: int) -> list[str]:
        return self.call("submitters", round_)

    def has_submitted(self, round_: int, account: str) -> bool:
        return self.call("hasSubmitted", round_, account)

    def share_count(self, round_: int, included_clients: ClientSet) -> int:
        return self.call("shareCount", round_, included_clients.words())

    def vote_count(self, round_: int, model_cid: str) -> int:
        return self.call("voteCount", round_, *cid_to_parts(model_cid))

    # --------------------------------------------------------------------------- calls

    def function_name(self, data: bytes) -> str | None:
        """The function of this contract whose selector begins ``data`` (calldata), or None."""
        return self._functions_by_selector.get(bytes(data[:4])) if len(data) >= 4 else None

    def decode_call(self, data: bytes | str) -> DecodedCall:
        """Calldata sent to this contract, decoded; never raises (the result says what did not
        decode). Calldata is untrusted: anyone can have any bytes mined as a call to it."""
        try:
            raw = bytes(HexBytes(data))
        except _CALL_DECODING_ERRORS:
            return DecodedCall(b"", problem="the input is not hex data")
        if len(raw) < 4:
            return DecodedCall(raw, problem=f"{len(raw)} bytes of input, too short for a 4-byte function selector")
        function = self.function_name(raw)
        if function is None:
            return DecodedCall(raw, problem=f"selector {_hex(raw[:4])} names no function of the round contract")
        try:
            _, args = self.contract.decode_function_input(raw)
        except _CALL_DECODING_ERRORS as exc:
            return DecodedCall(raw, function, problem=f"the arguments of {function} do not decode: "
                                                      f"{type(exc).__name__}: {str(exc)[:200].rstrip('.')}")
        return DecodedCall(raw, function, {name: _plain(value) for name, value in args.items()})

    # -------------------------------------------------------------------------- events

    def decode_logs(self, logs: Iterable[Log | Mapping[str, Any]]) -> list[ChainEvent]:
        """The contract's events among ``logs`` (:class:`~fedtss.chain.reader.Log` values, or raw
        logs of a receipt or ``eth_getLogs``), in the order given; logs of other contracts or of
        unknown events are left out."""
        plain = (log if isinstance(log, Log) else log_from_rpc(log) for log in logs)
        return [self._decode_log(log) for log in plain if self._is_ours(log)]

    def events(self, receipt: Receipt | Mapping[str, Any]) -> list[ChainEvent]:
        """The contract's events in one receipt (a :class:`~fedtss.chain.reader.Receipt`, or the
        one :meth:`transact` returns), in log order."""
        return self.decode_logs(receipt.logs if isinstance(receipt, Receipt) else receipt["logs"])

    def get_events(self, from_block: int, to_block: int | str = "latest") -> list[ChainEvent]:
        """The contract's events in a block range, in chain order."""
        return self.decode_logs(self.chain.logs(self.address, from_block, to_block))

    def get_round_events(
        self, round_: int, kind: type[_E] | None = None, *, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[_E]:
        """The contract's events of round ``round_`` (only those of class ``kind`` if given), in chain order.

        The node filters on the indexed ``round`` topic, so this reads one round's logs, not
        the whole history. Events whose first indexed value is not a ``round``
        (``TrainingStarted``, ``TrainingCompleted``) are never included.
        """
        if kind is None or kind is RoundEvent:
            kinds = list(self._round_topics.values())
        elif kind.__name__ in self._round_topics:
            kinds = self._round_topics[kind.__name__]
        else:
            raise ChainError(f"{kind.__name__} is not an event indexed by round; "
                             f"use one of {sorted(self._round_topics)}")
        round_topic = "0x" + round_.to_bytes(32, "big").hex()
        return self.decode_logs(self.chain.logs(self.address, from_block, to_block, topics=[kinds, round_topic]))

    def _is_ours(self, log: Log) -> bool:
        return log.address == self.address and bool(log.topics) and log.topics[0] in self._events_by_topic

    def _decode_log(self, log: Log) -> ChainEvent:
        name = self._events_by_topic[log.topics[0]]
        codec = self._event_codecs.get(name)
        args = None if codec is None else codec.decode(log.topics[1:], log.data)
        if args is not None:
            return decode_event(name, {key: _plain(value) for key, value in args.items()},
                                block_number=log.block_number, tx_hash=log.tx_hash, log_index=log.log_index)
        entry = {"address": log.address, "topics": list(log.topics), "data": log.data, "blockNumber": log.block_number,
                 "blockHash": log.block_hash, "transactionHash": log.tx_hash, "transactionIndex": log.tx_index,
                 "logIndex": log.log_index}
        decoded = self.contract.events[name]().process_log(entry)
        args = {key: _plain(value) for key, value in decoded["args"].items()}
        return decode_event(name, args, block_number=log.block_number, tx_hash=log.tx_hash, log_index=log.log_index)


@dataclass(frozen=True)
class DecodedCall:
    """Calldata sent to the round contract: the function and arguments, or why they did not decode.

    Anyone can send any bytes to the contract and have them mined (a reverted call is still
    a transaction), so calldata is untrusted input: it is decoded by
    :meth:`RoundsContract.decode_call` alone, and a page shows an undecodable call as such, with
    its raw bytes.
    """

    data: bytes
    function: str | None = None  # the function the selector names, if any
    args: Mapping[str, Any] | None = None  # None when the arguments did not decode
    problem: str | None = None  # why the call did not decode, for the reader

    def describe(self) -> str:
        """One line for a list of transactions."""
        if self.problem is not None:
            what = f"{self.function}(…)" if self.function else f"selector {_hex(self.data[:4])}"
            return f"undecodable call: {what}, {len(self.data):,} bytes"
        round_ = self.args.get("round")
        return self.function if round_ is None else f"{self.function}(round {round_})"


# ------------------------------------------------------------------------------ internals

#: Views of state only the constructor writes (``immutable``, or ``_committee`` and
#: ``_sealingKeys``, assigned nowhere else in ``contracts/FedTSSRounds.sol``).
_FIXED_VIEWS = frozenset({"committee", "threshold", "checkPeriod", "aggregation"})


def _send(w3: Web3, account: LocalAccount, call: Any, decoder: _RevertDecoder, *, data: str | None = None) -> dict:
    """Estimate (decoding a revert), sign, send and wait; a mined revert also raises.

    A node that is away, or refuses the transaction (nonce too low, underpriced), is
    ChainUnavailable: the caller may send again once the node answers. With ``data`` (the call
    ABI-encoded) the transaction is built from plain requests (:func:`_plain_transaction`) unless
    one of them answers with an error; web3 then builds it, and its estimate names the revert.
    """
    rpc_url = str(getattr(w3.provider, "endpoint_uri", "") or "")
    what = getattr(call, "fn_name", "contract deployment")
    try:
        tx = None if data is None else _plain_transaction(w3, account.address, call.address, data)
        if tx is None:
            params = {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending")}
            # Estimate on the pending block: its timestamp is "now", so a deadline that has passed
            # in wall-clock time has passed here too, even on an idle chain whose last block is old.
            estimate = call.estimate_gas(params, block_identifier="pending")
            tx = call.build_transaction({**params, "gas": estimate + GAS_HEADROOM})
    except ContractLogicError as exc:
        raise decoder.decode(exc) from exc
    except (*NODE_FAILURES, *BAD_ANSWERS) as exc:
        raise node_error(exc, rpc_url, what) from exc
    signed = account.sign_transaction(tx)
    try:
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    except Web3RPCError as exc:
        raise ChainUnavailable(f"the node refused the transaction from {account.address}: {exc}") from exc
    except (*NODE_FAILURES, *BAD_ANSWERS) as exc:
        raise node_error(exc, rpc_url, what) from exc
    if receipt["status"] != 1:
        raise explain_mined_revert(call, account, receipt, decoder)
    return receipt


def _plain_transaction(w3: Web3, sender: str, to: str, data: str) -> dict[str, Any] | None:
    """The EIP-1559 transaction web3's ``build_transaction`` would give for ``data`` (the same
    nonce, estimate on the pending block, tip and fee cap: tip + 2 x the latest base fee), from
    four requests handed straight to the provider: web3 spends about 10 ms of CPU formatting and
    encoding the call twice (estimate, then build), and members and clients send 25 transactions
    a round between them. None when an answer is an error (the estimate reverts) or lacks a field
    (a chain without base fees): the caller then goes through web3."""
    def ask(method: str, params: list[Any]) -> Any:
        answer = w3.provider.make_request(RPCEndpoint(method), params)
        if not isinstance(answer, Mapping) or "error" in answer or answer.get("result") is None:
            raise LookupError(method)
        return answer["result"]

    try:
        nonce = int(ask("eth_getTransactionCount", [sender, "pending"]), 16)
        gas = int(ask("eth_estimateGas", [{"from": sender, "to": to, "data": data, "nonce": hex(nonce)}, "pending"]), 16)
        tip = int(ask("eth_maxPriorityFeePerGas", []), 16)
        base_fee = int(ask("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    except (LookupError, TypeError, ValueError):
        return None
    return {"type": 2, "chainId": w3.eth.chain_id, "nonce": nonce, "to": to, "data": data, "value": 0,
            "gas": gas + GAS_HEADROOM, "maxPriorityFeePerGas": tip, "maxFeePerGas": tip + 2 * base_fee}


def explain_mined_revert(call: Any, account: LocalAccount, receipt: Mapping[str, Any],
                         decoder: _RevertDecoder) -> ChainError:
    """Name the custom error of a transaction that passed estimation but reverted when mined.

    That happens when another transaction changed the state first (a late vote after t matching
    votes already finalized the round): replaying the call on the state it was mined into gives
    the same ``ContractRevert`` an estimate would have, so callers handle both races alike.
    """
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    error = _replayed_error(lambda at: call.call({"from": account.address}, block_identifier=at),
                            (receipt["blockNumber"],), decoder)
    if isinstance(error, ContractRevert):
        return ContractRevert(error.name, error.args_by_name, f"transaction {tx_hash} reverted when mined: {error}")
    if error is not None:
        return error
    return ChainError(f"transaction {tx_hash} reverted when mined, and replaying it on the "
                      "state after its block names no error: inspect it in the explorer")


def _replayed_error(replay: Callable[[int], Any], blocks: Iterable[int], decoder: _RevertDecoder) -> ChainError | None:
    """The decoded error of the first of ``blocks`` on whose state ``replay(block)`` reverts."""
    for block in blocks:
        try:
            replay(max(block, 0))
        except ContractLogicError as exc:
            return decoder.decode(exc)
        except (Web3Exception, OSError, ValueError):
            continue  # the node cannot replay on that state (pruned, gone): try the next
    return None


class _RevertDecoder:
    """Turns revert data into ContractRevert(name, named args) using the ABI's errors."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors = {function_abi_to_4byte_selector(item): item for item in abi if item["type"] == "error"}

    def decode(self, exc: ContractLogicError) -> ChainError:
        data = exc.data if isinstance(exc.data, str) else None
        if isinstance(exc, ContractPanicError) or not data or len(data) < 10:
            return ChainError(f"contract call failed: {exc.message or exc}")
        raw = bytes.fromhex(data.removeprefix("0x"))
        item = self._errors.get(raw[:4])
        if item is None:
            return ChainError(f"contract reverted with unknown error data {data}")
        try:
            values = abi_decode([_abi_type(i) for i in item["inputs"]], raw[4:])
        except (DecodingError, ValueError):  # short or garbled argument bytes
            return ChainError(f"contract reverted with {item['name']} but malformed arguments: {data}")
        args = {i["name"]: _typed(i, v) for i, v in zip(item["inputs"], values, strict=True)}
        return ContractRevert(item["name"], args)


def _typed(item: dict[str, Any], value: Any) -> Any:
    if item["name"] == "expectedStates":
        return RoundState.from_bitmap(value)
    if item.get("internalType", "").endswith("RoundState"):
        return RoundState(value)
    if item.get("internalType", "").endswith("AggregationMode") and 0 <= value < len(AGGREGATION_MODES):
        return AGGREGATION_MODES[value]
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _topic(event: dict[str, Any]) -> str:
    """An event's topic 0, as lowercase 0x hex (how :class:`~fedtss.chain.reader.Log` has it)."""
    return _hex(Web3.keccak(text=_signature(event)))


def _first_indexed(event: dict[str, Any]) -> str | None:
    return next((i["name"] for i in event["inputs"] if i.get("indexed")), None)


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
