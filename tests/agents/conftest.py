"""A whole small federation in one process, on the session's anvil and a LocalStore in tmp_path.

:func:`federation` deploys a fresh contract, writes the deployment record, one TOML node
config per agent and each client's data file, stores the initial model, opens training, and
builds the agents exactly as ``python -m agents.<role> --config`` does (config loader,
``connect_node``, keys from an environment mapping). :meth:`Federation.drive` then plays the
role of the event runtime: it reads the contract's events in chain order and hands each one
to every agent, until no new event appears. The separate-process tests live in
tests/orchestration.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from agents.aggregator import AggregatorAgent, build_aggregator_agent
from agents.client import ClientAgent, build_client_agent
from agents.config import load_node_config
from agents.learning import (
    DEFAULT_TASK,
    LoadedTask,
    apply_mean_update,
    compute_client_update,
    load_task,
    round_settings,
)
from agents.runtime import TICK_SECONDS, Agent, Outcome, Tick, connect_node, handle_event
from fedtss.chain import (
    Artifact,
    ChainEvent,
    Deployment,
    Member,
    ModelProposed,
    RoundFinalized,
    RoundsConfig,
    RoundsContract,
    deploy_rounds,
    events_of,
)
from fedtss.chain import Aggregation, dev_sealing_keypair
from fedtss.chain.keys import load_masking_key
from fedtss.formats import decode_model, encode_model
from fedtss.quantize import clip_update, quantization_error_bound
from fedtss.storage import LocalStore
from fedtss.task import Settings
from tests.fixtures.anvil import AnvilNode

SEED = 7
EPOCHS = 1
CLIP_NORM = 10.0


def _let_fetches_finish(agent: Agent) -> None:
    """Settle a waiting member's share fetches, asking again for blobs published since: what a
    process's threads do between its ticks, done here before each tick so that who votes first
    follows the order the test chose, not thread timing."""
    for vote in getattr(agent, "pending", {}).values():
        vote.fetcher.refresh()
        vote.fetcher.collect(wait_for_all=True)


@dataclass
class Federation:
    """The deployed contract, the shared store and the agents, plus what the test needs to check."""

    chain: AnvilNode
    contract: RoundsContract
    store: LocalStore
    task: LoadedTask
    client_data: list[object]  # what each client's task.load_data gave, by client index
    initial_tensors: dict[str, np.ndarray]
    clients: list[ClientAgent]
    members: list[AggregatorAgent]
    next_block: int
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    outcomes: list[tuple[str, ChainEvent, Outcome]] = field(default_factory=list)

    @property
    def agents(self) -> list[Agent]:
        return [*self.clients, *self.members]

    def events(self) -> list[ChainEvent]:
        """Every event of this federation's contract so far."""
        return self.contract.get_events(self.clients[0].node.deployment.deploy_block)

    def drive(
        self,
        agents: Sequence[Agent] | Callable[[ChainEvent], Sequence[Agent]] | None = None,
        *,
        max_passes: int = 20,
        wait_timeout: float = 120.0,
    ) -> list[ChainEvent]:
        """Deliver every new event, in chain order, to each agent in turn, until the chain is
        quiet and no agent waits.

        ``agents`` may be a function of the event, to choose who hears it first. An agent that
        waits (a member collecting aggregate shares) hears a :class:`Tick` now and then, the
        chain's new events delivered before each one, as its process's runtime would.
        """
        delivered: list[ChainEvent] = []
        deadline = time.monotonic() + wait_timeout
        for _ in range(max_passes):
            delivered += self._deliver_new(agents)
            while waiting := [a for a in self._tickable(agents) if a.is_waiting()]:
                if time.monotonic() > deadline:
                    raise AssertionError(f"agents still waiting after {wait_timeout} s")
                time.sleep(TICK_SECONDS)  # the fetches run in the members' threads meanwhile
                for agent in waiting:
                    delivered += self._deliver_new(agents)
                    if agent.is_waiting():
                        _let_fetches_finish(agent)
                        self.deliver(Tick(), [agent])
            if self.chain.w3.eth.block_number < self.next_block:
                return delivered
        raise AssertionError("the federation never went quiet")

    def _deliver_new(self, agents: Sequence[Agent] | Callable[[ChainEvent], Sequence[Agent]] | None) -> list[ChainEvent]:
        head = self.chain.w3.eth.block_number
        if head < self.next_block:
            return []
        new = self.contract.get_events(self.next_block, head)
        self.next_block = head + 1
        for event in new:
            self.deliver(event, agents(event) if callable(agents) else agents)
        return new

    def _tickable(self, agents: Sequence[Agent] | Callable[[ChainEvent], Sequence[Agent]] | None) -> Sequence[Agent]:
        if agents is None:
            return self.agents
        return agents(Tick()) if callable(agents) else agents

    def deliver(self, event: ChainEvent | Tick, agents: Sequence[Agent] | None = None) -> None:
        agents = self.agents if agents is None else agents
        for agent in agents:
            started = time.monotonic()
            outcomes = handle_event(agent, event)
            self.seconds[event.name] += time.monotonic() - started
            self.outcomes += [(agent.node.address, event, o) for o in outcomes]

    def finalized_model(self, round_: int = 1) -> tuple[str, dict[str, np.ndarray]]:
        """The CID and tensors of the model the round finalized."""
        (event,) = [e for e in events_of(self.events(), RoundFinalized) if e.round == round_]
        cid = event.model_cid
        return cid, decode_model(self.store.get(cid, max_bytes=1 << 24), max_bytes=1 << 24)

    def client_update(self, index: int, round_: int = 1) -> tuple[np.ndarray, int]:
        """Client ``index``'s (delta, samples) in round 1, computed as its agent does."""
        settings = round_settings(Settings(epochs=EPOCHS), federation_seed=SEED, round_number=round_,
                                  client_index=index)
        return compute_client_update(self.task, self.initial_tensors, self.client_data[index], settings)

    def plaintext_fedavg(self, included: Sequence[int]) -> dict[str, np.ndarray]:
        """Clipped, sample-weighted FedAvg of the included clients' round-1 updates, in float."""
        total, samples = 0.0, 0
        for index in included:
            delta, count = self.client_update(index)
            total = total + clip_update(delta, CLIP_NORM) * count
            samples += count
        return apply_mean_update(self.initial_tensors, total / samples)

    def assert_model_is_fedavg_of(self, included: Sequence[int]) -> None:
        """The finalized model equals plaintext FedAvg of ``included`` within the quantization error."""
        _, model = self.finalized_model()
        expected = self.plaintext_fedavg(included)
        samples = sum(self.client_update(i)[1] for i in included)
        client = self.clients[0]
        bound = quantization_error_bound(client.federation.quantization, clients=len(included), total_samples=samples,
                                         weighted_by_members=bool(client.check_period) and client.modulus_bits is None)
        for name, value in expected.items():
            gap = np.abs(model[name].astype(np.float64) - value.astype(np.float64))
            allowed = bound + np.spacing(np.abs(value)).astype(np.float64)  # one float32 rounding
            assert np.all(gap <= allowed), f"{name}: gap {gap.max():.3g} exceeds {allowed.max():.3g}"

    def votes(self, round_: int = 1) -> dict[str, str]:
        """Member address -> CID it voted for."""
        return {e.member: e.model_cid for e in events_of(self.events(), ModelProposed) if e.round == round_}


@dataclass(frozen=True)
class FederationShape:
    clients: int = 3
    members: int = 3
    threshold: int = 2
    min_clients: int = 2
    aggregation_period: int = 600
    #: Submissions that close collection (0: every client).
    target_clients: int = 0
    #: 0: the Shamir mode; 32..64: the masked mode over that ring (fedtss.masking).
    modulus_bits: int = 0
    #: Seconds members have to post share checks, and again complaints (0: no checks; agents.client_checks).
    check_period: int = 0


def masking_private_key(index: int) -> bytes:
    """Client ``index``'s X25519 masking key: fixed, so a failing test replays exactly."""
    return bytes([0x4D, index]) * 16


def _masking_public_key(index: int) -> bytes:
    return load_masking_key(key_env="KEY", environ={"KEY": masking_private_key(index).hex()}).public_key


def _rounds_config(chain: AnvilNode, shape: FederationShape) -> RoundsConfig:
    members = chain.accounts[1 : 1 + shape.members]
    masked = shape.modulus_bits != 0
    return RoundsConfig(
        aggregation=Aggregation("masked", shape.modulus_bits) if masked else Aggregation(),
        client_keys=tuple(_masking_public_key(i) for i in range(shape.clients)) if masked else (),
        committee=tuple(Member(a.address, dev_sealing_keypair(a.address)[1]) for a in members),
        threshold=shape.threshold,
        clients=tuple(a.address for a in chain.accounts[10 : 10 + shape.clients]),
        min_clients=shape.min_clients,
        target_clients=shape.target_clients or shape.clients,
        collection_period=600,
        aggregation_period=shape.aggregation_period,
        check_period=shape.check_period,
    )


def _node_toml(tmp_path: Path, name: str, chain: AnvilNode, role_table: str) -> Path:
    path = tmp_path / "nodes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""
[node]
rpc_url = "{chain.url}"
deployment = "{tmp_path / 'deployment.json'}"
store = "{tmp_path / 'store'}"
state_dir = "{tmp_path / 'state' / name}"
private_key_env = "KEY_{name.upper().replace('-', '_')}"

[federation]
seed = {SEED}
clip_norm = {CLIP_NORM}
{role_table}
""",
        encoding="utf-8",
    )
    return path


def build_federation(tmp_path: Path, chain: AnvilNode, artifact: Artifact, shape: FederationShape) -> Federation:
    config = _rounds_config(chain, shape)
    address, receipt = deploy_rounds(chain.w3, chain.accounts[0], artifact, config)
    (tmp_path / "FedTSSRounds.json").write_text(json.dumps({"abi": artifact.abi}), encoding="utf-8")
    Deployment(chain.w3.eth.chain_id, address, tmp_path / "FedTSSRounds.json", receipt["blockNumber"],
               "0x" + bytes(receipt["transactionHash"]).hex(), config).write(tmp_path / "deployment.json")
    task = load_task(DEFAULT_TASK)
    parts, _ = task.partition(shape.clients, SEED, Settings())
    environ: dict[str, str] = {}
    clients, members = [], []
    for i, account in enumerate(chain.accounts[10 : 10 + shape.clients]):
        data = tmp_path / "data" / f"client-{i}.npz"
        data.parent.mkdir(parents=True, exist_ok=True)
        np.savez(data, **parts[i])
        path = _node_toml(tmp_path, f"client-{i}", chain,
                          f'[client]\ndata = "{data}"\nindex = {i}\nepochs = {EPOCHS}\n'
                          f'masking_key_env = "MASKING_{i}"\n')
        environ[f"KEY_CLIENT_{i}"] = account.key.hex()
        environ[f"MASKING_{i}"] = masking_private_key(i).hex()
        clients.append(build_client_agent(connect_node(load_node_config(path, role="client"), environ), environ))
    for j, account in enumerate(chain.accounts[1 : 1 + shape.members], start=1):
        environ[f"KEY_MEMBER_{j}"] = account.key.hex()
        environ[f"SEALING_{j}"] = dev_sealing_keypair(account.address)[0].hex()
        path = _node_toml(tmp_path, f"member-{j}", chain,
                          f'[aggregator]\nsealing_key_env = "SEALING_{j}"\nshare_wait_seconds = 0.0\n')
        node = connect_node(load_node_config(path, role="aggregator"), environ)
        members.append(build_aggregator_agent(node, environ))
    store = LocalStore(tmp_path / "store")
    tensors = task.initial_tensors(SEED)
    contract = clients[0].node.contract
    contract.start_training(chain.accounts[0], store.put(encode_model(tensors)), 1)
    return Federation(chain, contract, store, task, [c.data for c in clients], tensors, clients, members,
                      next_block=receipt["blockNumber"])


@pytest.fixture
def make_federation_in(
    chain: AnvilNode, rounds_artifact: Artifact, tmp_path: Path
) -> Iterator[Callable[..., Federation]]:
    """``make(clients=3, members=3, threshold=2)``: a fresh federation with round 1 open.

    The checks' kernels are compiled first, as the agents' processes do at start: these agents are
    built in process, and a fresh clone's first compile (about 7 s on a loaded machine) inside a
    3 s check window made every member miss it (RoundDeadlinePassed) in a CI run."""
    from fedtss.wraparound import warm_up

    warm_up(member=True)

    def make(**shape: int) -> Federation:
        return build_federation(tmp_path, chain, rounds_artifact, FederationShape(**shape))

    yield make

