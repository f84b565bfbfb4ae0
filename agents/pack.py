"""Several client agents in one process, for running many clients on one machine.

    python -m agents.pack --config runs/demo/nodes/client-0.toml --config runs/demo/nodes/client-1.toml

A real deployment runs one client per data owner, one process each (``python -m agents.client``).
On one machine that costs each client its own copy of PyTorch, web3 and numba (about 265 MB and a
second of start-up on two cores), which is what capped a local federation at about 50 clients.
A pack builds every client exactly as ``python -m agents.client`` does, from its own node config:
its own key (the config's ``private_key_env`` or keystore), task, data, state folder and
checkpoint. Their event loops then run side by side in one asyncio loop, sharing the libraries; a
handler that trains runs in a thread (:func:`agents.runtime.run_agent`), so one client training
does not hold up the others' events. They share one event follower
(:class:`fedtss.chain.shared_events.SharedEventSource`: each block's logs are read once for the
pack, not once per client) and write their checkpoints at most once a second.

An agent that stops stops the pack, as it would stop its own process: the launcher sees the
pack's exit and its log names the agent (every log line carries the agent's address).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from agents.client import build_client_agent
from agents.runtime import (Agent, build_agent, event_source, handled_events, run_agent, run_logged,
                            run_until_terminated)
from fedtss.chain.shared_events import SharedEventSource

__all__ = ["main", "run_pack"]


#: A packed client writes its checkpoint at most this often (see :class:`fedtss.chain.checkpoint.Checkpoint`):
#: it handles one event a round (``RoundOpened``) and hears every other client's, and a write per
#: block per client was a million fsyncs a round at 1,000 clients.
CHECKPOINT_WRITE_INTERVAL_S = 1.0


def shared_sources(agents: Sequence[Agent]) -> list[SharedEventSource]:
    """One :class:`SharedEventSource` per node and contract the agents follow, in the agents' order."""
    def key(agent: Agent) -> tuple[str, str, str, int]:
        node = agent.node.config.node
        return node.rpc_url, node.http_url, agent.node.deployment.address, node.confirmations

    groups: dict[tuple[str, str, str, int], list[Agent]] = {}
    for agent in agents:
        groups.setdefault(key(agent), []).append(agent)
    sources = {k: SharedEventSource(event_source(members[0].node, events=handled_events(*members)),
                                    subscribers=len(members))
               for k, members in groups.items()}
    return [sources[key(agent)] for agent in agents]


async def run_pack(agents: Sequence[Agent]) -> None:
    """Run every agent's event loop until one of them stops; then stop the others."""
    tasks = [asyncio.create_task(run_agent(agent, source=source, checkpoint_write_interval=CHECKPOINT_WRITE_INTERVAL_S))
             for agent, source in zip(agents, shared_sources(agents), strict=True)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # the first agent that stopped says why
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """``python -m agents.pack --config FILE [--config FILE ...]``: returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m agents.pack", description="Run several fedtss clients.")
    parser.add_argument("--config", type=Path, action="append", required=True,
                        help="a client's node TOML config (repeat for each client)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    args = parser.parse_args(argv)

    def work() -> None:
        agents = [build_agent(path, role="client", build=lambda node: build_client_agent(node, environ),
                              environ=environ) for path in args.config]
        run_until_terminated(run_pack(agents))

    return run_logged("client", work, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
