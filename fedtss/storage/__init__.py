"""Content-addressed storage: put bytes, get them back by CID, verified and size-limited.

- :class:`LocalStore`: a directory of blobs, the embedded default for one machine.
- :class:`KuboStore`: an IPFS daemon's Kubo RPC API, for federations across machines.
- :func:`open_store`: pick one from a location string (path, ``file://`` or ``http://``).
"""

from fedtss.storage.base import ContentStore, open_store
from fedtss.storage.kubo import KuboStore
from fedtss.storage.local import LocalStore

__all__ = ["ContentStore", "LocalStore", "KuboStore", "open_store"]
