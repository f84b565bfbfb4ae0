"""Fixtures of the explorer and operator-CLI tests: a two-round federation, a headless browser,
and the explorer serving that federation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestration.explorer.app import create_app
from orchestration.explorer.chainview import FederationView
from tests.fixtures.browser import browser, serve_app  # noqa: F401
from tests.fixtures.federation import TwoRoundFederation, two_round_federation  # noqa: F401


@pytest.fixture(scope="session")
def explorer_url(two_round_federation: TwoRoundFederation) -> Iterator[str]:
    """The explorer on the two-round federation, reading its run folder like `fedtss explorer runs/x`."""
    fed = two_round_federation
    view = FederationView(fed.anvil.url, fed.deployment, run_dir=fed.run_dir)
    app = create_app(view, report_path=fed.run_dir / "report.json", store=fed.store, poll_seconds=0.5)
    with serve_app(app) as url:
        yield url
