"""The one launcher helper every end-to-end test shares: a small federation of real processes.

Each test gets :func:`small_federation`, which sets up a run under the test's temporary
folder with the same :class:`~orchestration.launcher.LocalFederation` the demo uses (anvil,
deploy.py, local store, one OS process per agent, the keeper) and stops every process at
the end of the test, whatever happened. Short periods and tiny rounds keep each test to
tens of seconds on two cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from orchestration.launcher import FederationSpec, LocalFederation
from orchestration.tracker import RoundTracker

#: 3 clients, committee of 3, t = 2, as the issue's end-to-end test asks.
SMALL = FederationSpec(name="e2e", clients=3, committee=3, threshold=2, rounds=2, min_clients=2,
                       collection_period=60, aggregation_period=30, share_wait_seconds=0.5,
                       keeper_interval=0.5, clients_per_process=1)
#: A round's phases take a few seconds here; a minute leaves room for a loaded machine.
ROUND_TIMEOUT = 60.0


@pytest.fixture
def small_federation(tmp_path) -> Iterator[Callable[..., tuple[LocalFederation, RoundTracker]]]:
    """``start(skip=(), **spec overrides) -> (federation, tracker)``, training opened."""
    federations: list[LocalFederation] = []

    def start(*, skip: tuple[str, ...] = (), **overrides: object) -> tuple[LocalFederation, RoundTracker]:
        spec = replace(SMALL, runs_dir=tmp_path / "runs", **overrides)
        federation = LocalFederation(spec)
        federations.append(federation)
        federation.prepare()
        federation.start_agents(skip=skip)
        federation.wait_until_ready()
        tracker = RoundTracker(federation)
        federation.start_training()
        return federation, tracker

    try:
        yield start
    finally:
        for federation in federations:
            federation.close()
