"""fedtss protocol core: pure math and formats that the agents call.

Nothing in this package touches the network, the disk, the clock or a global random state;
randomness and time are parameters. The chain bindings live in :mod:`fedtss.chain` and the
content stores in :mod:`fedtss.storage`.
"""

from fedtss.errors import *  # noqa: F401,F403
from fedtss.errors import __all__ as _errors_all

__all__ = [*_errors_all]
