"""agents.pack: several client agents in one process, each on its own event loop task."""

from __future__ import annotations

import asyncio

import pytest

from agents import pack


def test_a_pack_runs_every_agent_and_stops_them_all_when_one_stops(monkeypatch) -> None:
    started: list[str] = []
    cancelled: list[str] = []

    async def fake_run_agent(agent: str, **_: object) -> None:
        started.append(agent)
        try:
            if agent == "failing":
                await asyncio.sleep(0.05)
                raise RuntimeError("handler failed")
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(agent)
            raise

    monkeypatch.setattr(pack, "run_agent", fake_run_agent)
    monkeypatch.setattr(pack, "shared_sources", lambda agents: [None] * len(agents))
    with pytest.raises(RuntimeError, match="handler failed"):
        asyncio.run(asyncio.wait_for(pack.run_pack(["a", "failing", "b"]), timeout=10))
    assert started == ["a", "failing", "b"]
    assert sorted(cancelled) == ["a", "b"]


def test_a_pack_whose_config_does_not_load_exits_with_status_1_naming_the_file(tmp_path, caplog) -> None:
    missing = tmp_path / "client-9.toml"
    assert pack.main(["--config", str(missing)], environ={}) == 1
    assert "client-9.toml" in caplog.text


def test_agents_share_a_follower_only_with_the_same_node_urls_contract_and_confirmations(monkeypatch) -> None:
    from types import SimpleNamespace

    from agents.runtime import Tick
    from fedtss.chain import RoundFinalized, RoundOpened

    def agent(rpc: str, http: str, address: str = "0xC0", confirmations: int = 0,
              handlers=(RoundOpened, Tick)) -> SimpleNamespace:
        node = SimpleNamespace(rpc_url=rpc, http_url=http, confirmations=confirmations)
        return SimpleNamespace(node=SimpleNamespace(config=SimpleNamespace(node=node),
                                                    deployment=SimpleNamespace(address=address)),
                               handlers=dict.fromkeys(handlers))

    monkeypatch.setattr(pack, "event_source", lambda node, events: ("source of", node.config.node.http_url, events))
    agents = [agent("ws://a", "http://a"), agent("ws://a", "http://a", handlers=(RoundFinalized,)),
              agent("ws://a", "http://a/key2"), agent("ws://a", "http://a", confirmations=2),
              agent("ws://a", "http://a", address="0xD0"), agent("ws://a", "http://a")]
    sources = pack.shared_sources(agents)
    assert sources[0] is sources[1] is sources[5] and sources[0].subscribers == 3
    assert len({id(s) for s in sources}) == 4
    assert sources[2].source == ("source of", "http://a/key2", {"RoundOpened"}) and sources[2].subscribers == 1
    # A shared follower reads the events any of its agents handles (a Tick is no chain event).
    assert sources[0].source[2] == {"RoundOpened", "RoundFinalized"}
