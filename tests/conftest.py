"""Shared pytest set-up: fixtures that start real parts live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.anvil",
    "tests.fixtures.ipfs",
]
