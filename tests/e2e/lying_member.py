"""A committee member that posts a false check about client 0 in every round, for the end-to-end tests.

    python -m tests.e2e.lying_member --config runs/NAME/nodes/member-2.toml

It is the real member (agents.aggregator) with one change: the projection it posts for the round's
first client is off by one. Honest members must name it and keep the client.
"""

from __future__ import annotations

import sys

from agents import client_checks
from agents.aggregator import build_aggregator_agent
from agents.runtime import main
from fedtss.field import MODULUS

_post_checks = client_checks.post_checks


def post_false_checks(agent, round_, checks):
    if checks and checks[0] is not None:
        (projection, count_share, norm), *rest = checks
        checks = [((projection + 1) % MODULUS, count_share, norm), *rest]
    return _post_checks(agent, round_, checks)


client_checks.post_checks = post_false_checks

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], role="aggregator", build=build_aggregator_agent))
