"""Fixtures of the explorer and operator-CLI tests (a two-round federation, a headless browser)."""

from tests.fixtures.federation import two_round_federation  # noqa: F401
