"""The shared runner with the real event source: catch up, act, checkpoint, restart without resending,
follow a reorganized chain, and hold events back by the configured confirmations."""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import requests

from agents.client import build_client_agent
from agents.config import parse_node_config
from agents.runtime import (CHECKPOINT_FILE, NOTHING_TO_DECIDE, Outcome, format_fields, handle_event,
                            handle_event_retrying, is_transient, main, run_agent)
from fedtss.chain import CollectionClosed, RoundOpened, RoundState, events_of, redact_node_urls
from fedtss.chain.events import Backoff
from fedtss.errors import (
    BlobNotFound,
    ChainError,
    ChainUnavailable,
    ConfigError,
    ContractRevert,
    FormatError,
    StorageError,
    StoreUnavailable,
)
from tests.agents.conftest import Federation
from tests.fixtures.reorg import reorganize_from

ROOT = Path(__file__).resolve().parents[2]


def _run_until_head(agent, fed: Federation) -> int:
    head = fed.chain.w3.eth.block_number
    asyncio.run(run_agent(agent, until_block=head, poll_interval=0.05))
    return head


@pytest.mark.parametrize("scheme", ["http", "ws"])
def test_an_agent_catches_up_from_its_checkpoint_and_a_restart_sends_nothing(
    make_federation_in, caplog, scheme: str
) -> None:
    caplog.set_level(logging.INFO, logger="fedtss.agents")
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    client = fed.clients[0]
    settings = client.node.config.node
    url = scheme + settings.rpc_url.removeprefix("http")
    client.node.config = replace(client.node.config, node=replace(settings, rpc_url=url))
    me = client.node.address
    checkpoint = Path(client.node.config.node.state_dir) / CHECKPOINT_FILE

    head = _run_until_head(client, fed)
    assert fed.contract.has_submitted(1, me)
    assert f'"block": {head}' in checkpoint.read_text()
    nonce = fed.chain.w3.eth.get_transaction_count(me)

    _run_until_head(client, fed)  # resumes after the checkpoint: only its own UpdateSubmitted is new
    checkpoint.unlink()  # lost state: every event since the deployment comes again
    _run_until_head(client, fed)

    assert fed.chain.w3.eth.get_transaction_count(me) == nonce
    lines = [r.getMessage() for r in caplog.records if "event=RoundOpened" in r.getMessage()]
    assert len(lines) == 2 and "action=train_and_submit" in lines[0] and "already submitted" in lines[1]


def test_main_exits_with_status_1_naming_the_bad_field(tmp_path: Path, caplog) -> None:
    config = tmp_path / "client.toml"
    config.write_text("[node]\nrpc_url = 'ftp://x'\n", encoding="utf-8")
    assert main(["--config", str(config)], role="client", build=build_client_agent, environ={}) == 1
    assert any("rpc_url" in r.getMessage() and "ConfigError" in r.getMessage() for r in caplog.records)


def test_the_agents_run_as_modules() -> None:
    for module in ("agents.client", "agents.aggregator"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0 and "--config" in result.stdout


def test_log_fields_are_one_line_and_leave_out_empty_values() -> None:
    line = format_fields(role="client", round=3, cid=None, reason="deadline\npassed", note="")
    assert line == "role=client round=3 reason='deadline passed' note=''"


class _FlakyNodeAgent:
    """A stand-in agent whose node refuses the first ``failures`` connections (a real node
    cannot be made to drop at an exact point of a handler here), then answers."""

    role = "client"

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.executed = failures, error, 0
        self.node = self
        self.address = "0x00000000000000000000000000000000000000c1"
        self.handlers = {RoundOpened: lambda view, event, now: [event.round]}

    def chain_time(self) -> int:
        if self.failures:
            self.failures -= 1
            raise self.error
        return 0

    def observe(self, event):
        return None

    def execute(self, action) -> Outcome:
        self.executed += 1
        return Outcome(cid="bafk-test")


def _round_opened() -> RoundOpened:
    return RoundOpened(round=4, model_cid="bafkreiaaa", collection_deadline=0, block_number=9, tx_hash="0x01",
                       log_index=0)


def _raised(error: Exception, cause: BaseException) -> Exception:
    """``error`` as ``raise error from cause`` leaves it, as the chain and store layers raise them."""
    try:
        raise error from cause
    except Exception as exc:
        return exc


def test_an_event_observed_as_nothing_to_decide_reads_no_chain_time_and_calls_no_handler() -> None:
    agent = _FlakyNodeAgent(failures=1, error=AssertionError("the chain's time was read"))
    called = []
    agent.handlers = {RoundOpened: lambda view, event, now: called.append(view) or [event.round]}
    agent.observe = lambda event: NOTHING_TO_DECIDE
    assert handle_event(agent, _round_opened()) == [] and called == [] and agent.executed == 0
    agent.observe = lambda event: None  # None is a view like any other (the keeper's, for a round it never saw)
    agent.failures = 0
    assert len(handle_event(agent, _round_opened())) == 1 and called == [None] and agent.executed == 1


def test_a_dropped_node_is_retried_with_backoff_and_the_event_handled_once(caplog) -> None:
    caplog.set_level(logging.INFO, logger="fedtss.agents")
    # What fedtss.chain raises for a node that went away (the node's URL, with its key, is in the cause).
    dropped = _raised(ChainUnavailable("the node at http://node:443 did not answer (block): connection refused"),
                      requests.ConnectionError("HTTPConnectionPool(host='node', port=443): url: /v3/SECRET-API-KEY"))
    agent, waits = _FlakyNodeAgent(2, dropped), []

    outcomes = handle_event_retrying(agent, _round_opened(), backoff=Backoff(initial=1.0), sleep=waits.append,
                                     rng=random.Random(0))

    assert [o.cid for o in outcomes] == ["bafk-test"] and agent.executed == 1
    assert len(waits) == 2 and 0.5 <= waits[0] < 1.0 and 1.0 <= waits[1] < 2.0
    retries = [r.getMessage() for r in caplog.records if "retry=" in r.getMessage()]
    assert len(retries) == 2 and "event=RoundOpened" in retries[0]
    assert "error=ChainUnavailable" in retries[0] and "cause=ConnectionError" in retries[0]
    assert not any("SECRET-API-KEY" in r.getMessage() for r in caplog.records)


def test_a_node_refusing_a_transaction_is_transient_but_a_revert_or_bad_input_is_not() -> None:
    # fedtss.chain raises ChainUnavailable for a refused transaction and for a timeout alike.
    refused = ChainUnavailable("the node refused the transaction from 0xc1: nonce too low")
    timed_out = _raised(ChainUnavailable("the node at http://node did not answer (block): timed out"), TimeoutError())
    assert is_transient(refused) and is_transient(timed_out)
    assert not is_transient(ContractRevert("RoundWrongState", {}))
    assert not is_transient(ChainError("contract reverted with unknown error data 0x12345678"))
    assert not is_transient(FormatError("manifest round does not match"))


def test_an_error_that_is_not_the_nodes_stops_the_agent_without_retrying() -> None:
    agent, waits = _FlakyNodeAgent(1, ChainError("contract call failed: panic")), []
    with pytest.raises(ChainError, match="panic"):
        handle_event_retrying(agent, _round_opened(), sleep=waits.append)
    assert waits == [] and agent.executed == 0


def test_a_missing_or_slow_blob_is_the_inputs_fault_but_an_unreachable_store_is_transient() -> None:
    # What KuboStore raises for a refused connection and for a slow answer.
    unreachable = _raised(StoreUnavailable("cannot reach the IPFS daemon"), httpx.ConnectError("refused"))
    slow = _raised(StorageError("did not answer in time"), httpx.ReadTimeout("slow"))
    assert is_transient(unreachable)
    assert not is_transient(slow) and not is_transient(BlobNotFound("blob bafk is not in the store"))


def test_an_unexpected_error_stops_the_agent_with_status_1_and_keeps_the_node_key_out_of_the_log(
    make_federation_in, caplog
) -> None:
    fed: Federation = make_federation_in(clients=2, members=2, threshold=2)
    client = fed.clients[0]
    redact_node_urls("https://node.example/v3/SECRET-API-KEY")  # as main does for its config's URLs

    def build(node):
        raise requests.ConnectionError("HTTPSConnectionPool(host='node.example'): url: /v3/SECRET-API-KEY")

    status = main(["--config", str(client.node.config.path)], role="client", build=build,
                  environ={"KEY_CLIENT_0": client.node.account.key.hex()})

    assert status == 1
    assert "stopped=ConnectionError" in caplog.text and "Traceback" in caplog.text
    assert "SECRET-API-KEY" not in caplog.text


def _with_node_settings(agent, **changes) -> None:
    config = agent.node.config
    agent.node.config = replace(config, node=replace(config.node, **changes))


def _closing_block(fed: Federation) -> int:
    (closed,) = events_of(fed.events(), CollectionClosed)
    return closed.block_number


def test_a_member_whose_collection_closed_was_reorganized_away_handles_the_re_mined_one(
    make_federation_in, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="fedtss.agents")
    fed: Federation = make_federation_in(clients=2, members=2, threshold=2)
    fed.drive(fed.clients)  # both clients submit; the second update closes collection
    member = fed.members[0]
    me = member.node.address
    closing = _closing_block(fed)
    _run_until_head(member, fed)
    assert fed.contract.member(me)[1] == 1  # it posted its aggregate share...

    reorganize_from(fed.chain.w3, closing)  # ...in a block that another branch replaced
    assert fed.contract.member(me)[1] == 0 and _closing_block(fed) == closing

    _run_until_head(member, fed)  # the same head number: only the hashes say it is another chain

    assert fed.contract.member(me)[1] == 1
    lines = [r.getMessage() for r in caplog.records if "event=CollectionClosed" in r.getMessage()]
    assert len(lines) == 2 and all("action=aggregate_and_submit" in line for line in lines)


def test_confirmations_from_the_node_config_hold_back_the_newest_blocks(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=2, members=2, threshold=2)
    client = fed.clients[0]
    _with_node_settings(client, confirmations=1)
    head = fed.chain.w3.eth.block_number  # RoundOpened is in the head block: not yet 1 deep
    checkpoint = Path(client.node.config.node.state_dir) / CHECKPOINT_FILE

    with pytest.raises(TimeoutError):  # it waits for a block on top of RoundOpened's
        asyncio.run(asyncio.wait_for(run_agent(client, until_block=head, poll_interval=0.05), 2))
    assert not fed.contract.has_submitted(1, client.node.address)

    fed.chain.w3.provider.make_request("evm_mine", [])
    asyncio.run(asyncio.wait_for(run_agent(client, until_block=head, poll_interval=0.05), 30))
    assert fed.contract.has_submitted(1, client.node.address)
    assert f'"block": {head}' in checkpoint.read_text()


def _member_document(**node: object) -> dict:
    return {"node": {"rpc_url": "ws://127.0.0.1:8545", "deployment": "d.json", "store": "store",
                     "state_dir": "state", **node}, "aggregator": {}}


def test_confirmations_in_the_node_config_default_to_0_and_refuse_what_is_not_a_block_count(tmp_path) -> None:
    path = tmp_path / "member-1.toml"
    assert parse_node_config(_member_document(), role="aggregator", path=path).node.confirmations == 0
    assert parse_node_config(_member_document(confirmations=12), role="aggregator",
                             path=path).node.confirmations == 12
    for bad in (-1, 2.5, True, 10**6):
        with pytest.raises(ConfigError, match="confirmations"):
            parse_node_config(_member_document(confirmations=bad), role="aggregator", path=path)


def _log_position(lines: list[str], *needles: str) -> int:
    found = [i for i, line in enumerate(lines) if all(n in line for n in needles)]
    assert found, f"no log line with {needles}; the log:\n" + "\n".join(lines)
    return found[0]


def test_members_wait_for_shares_by_ticks_and_handle_chain_events_meanwhile(make_federation_in, caplog) -> None:
    caplog.set_level(logging.INFO, logger="fedtss.agents")
    fed: Federation = make_federation_in(clients=2, members=3, threshold=2)
    fed.drive(fed.clients)
    for member in fed.members:  # wait for every share, so a member slow to post its own is still awaited
        member.settings = replace(member.settings, share_wait_seconds=60.0)

    waiting, late = fed.members[:2], fed.members[2]

    async def run_members_until_finalized_and_none_waits() -> None:
        runs = [asyncio.create_task(run_agent(member, poll_interval=0.05)) for member in waiting]
        try:
            # The third member starts once the first two wait in the round, so its share reaches them
            # as an event they handle while waiting. (Started together, the third share could be
            # mined before a member began to wait and be read with the round's others: no event.)
            for _ in range(600):
                if all(member.is_waiting() for member in waiting) or any(run.done() for run in runs):
                    break
                await asyncio.sleep(0.1)
            runs.append(asyncio.create_task(run_agent(late, poll_interval=0.05)))
            for _ in range(600):
                settled = not any(member.is_waiting() for member in fed.members)
                if (settled and fed.contract.state(1) == RoundState.Finalized) or any(run.done() for run in runs):
                    break
                await asyncio.sleep(0.1)
        finally:
            for run in runs:
                run.cancel()
            outcomes = await asyncio.gather(*runs, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes  # none stopped on its own

    asyncio.run(run_members_until_finalized_and_none_waits())

    assert fed.contract.state(1) == RoundState.Finalized
    lines = [r.getMessage() for r in caplog.records]
    # The late member heard ThresholdReached before it posted (it handles it first when catching up):
    # it publishes its share as it posts. (It used to keep it, and the others waited share_wait.)
    posted = lines[_log_position(lines, f"address={late.node.address}", "event=CollectionClosed",
                                 "action=aggregate_and_submit")]
    assert "published: the set was fixed before it posted" in posted
    for member in waiting:
        me = f"address={member.node.address}"
        started = _log_position(lines, me, "event=ThresholdReached", "action=start_reconstruction")
        # While it waited, the member went on handling chain events: the third share came as one...
        fetched = _log_position(lines, me, "event=AggregateShareSubmitted", "action=fetch_share")
        # ...and a clock tick, not a sleeping handler, ended the wait.
        ended = _log_position(lines, me, "round=1 event=Tick", "action=reconstruct_and_propose")
        assert started < fetched < ended
        # It voted, or saw t others had (before reading the round, or by losing the race to them).
        assert any(outcome in lines[ended] for outcome in (" tx=", "not voting", "reverted=RoundWrongState"))
    assert sum(" tx=" in line and "action=reconstruct_and_propose" in line for line in lines) >= 2
    assert not any(member.is_waiting() for member in fed.members)


def test_a_client_or_member_whose_max_clients_is_below_the_contracts_target_refuses_to_start(
        make_federation_in, tmp_path) -> None:
    from agents.aggregator import build_aggregator_agent
    from agents.config import load_node_config
    from agents.runtime import connect_node

    federation = make_federation_in(clients=3, members=3, threshold=2)
    # The check comes before any key but the account's (connect_node's) is read.
    environ = {"KEY_CLIENT_0": federation.clients[0].node.account.key.hex(),
               "KEY_MEMBER_1": federation.members[0].node.account.key.hex()}
    for name, role, build in (("client-0", "client", build_client_agent),
                              ("member-1", "aggregator", build_aggregator_agent)):
        path = tmp_path / "nodes" / f"{name}.toml"
        path.write_text(path.read_text().replace("[federation]\n", "[federation]\nmax_clients = 2\n"))
        node = connect_node(load_node_config(path, role=role), environ)
        with pytest.raises(ConfigError, match=r"up to 3 clients a round .* max_clients = 2 .* set max_clients >= 3"):
            build(node, environ)


def test_a_sigterm_lets_the_agents_finally_blocks_run_and_the_process_still_ends_by_that_signal(tmp_path) -> None:
    import signal
    import textwrap
    import time as time_module

    marker, ready = tmp_path / "flushed", tmp_path / "ready"
    program = textwrap.dedent(f"""
        import asyncio, pathlib
        from agents.runtime import run_until_terminated

        async def agent():
            try:
                pathlib.Path({str(ready)!r}).write_text("up")
                await asyncio.sleep(60)
            finally:
                pathlib.Path({str(marker)!r}).write_text("checkpoint written")

        run_until_terminated(agent())
        print("not reached")
    """)
    process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, cwd=Path.cwd())
    deadline = time_module.monotonic() + 30
    while not ready.exists() and time_module.monotonic() < deadline:
        time_module.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM  # the launcher tells "stopped by us" by this
    assert marker.read_text() == "checkpoint written" and b"not reached" not in out
