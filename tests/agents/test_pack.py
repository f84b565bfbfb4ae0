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
