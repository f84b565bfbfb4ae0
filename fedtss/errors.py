"""The one exception tree of fedtss.

A caller catches :class:`FedTSSError` (or one branch of it) and gets a message that says
what went wrong and what to change. Errors about untrusted bytes never say *why* a sealed
share failed to open (see :class:`InvalidSealedShare`), so callers cannot branch on it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "FedTSSError",
    "ConfigError",
    "TaskError",
    "FormatError",
    "StorageError",
    "StoreUnavailable",
    "BlobNotFound",
    "CIDMismatch",
    "BlobTooLarge",
    "ShareError",
    "InvalidShare",
    "InvalidSealedShare",
    "NotEnoughShares",
    "InconsistentShares",
    "ChainError",
    "ChainUnavailable",
    "ContractRevert",
]


class FedTSSError(Exception):
    """Root of every error fedtss raises on purpose."""


class ConfigError(FedTSSError):
    """A configuration value is out of range or inconsistent; the message names the field."""


class TaskError(ConfigError):
    """A user's task (its file, a function of it, its model or its data) cannot be used.

    The message starts with the task's name and says what to change in it.
    """


class FormatError(FedTSSError):
    """Bytes from storage, the chain or a file do not parse as the documented format."""


class StorageError(FedTSSError):
    """The content store could not put or get a blob."""


class StoreUnavailable(StorageError):
    """Our own store's daemon refuses connections: it is not running (yet), or the address is wrong.

    Raised by :class:`~fedtss.storage.KuboStore` when the connection itself fails, so that an
    agent can tell "try again later" from a blob's fault with one ``isinstance`` check. A
    transfer that is slow or cut off mid-way is a plain :class:`StorageError`: it may be the
    sender's doing, and retrying it forever would let one client stall a member.
    """


class BlobNotFound(StorageError):
    """No blob with this CID is in the store."""


class CIDMismatch(StorageError):
    """A blob's bytes do not hash to the CID it was fetched by."""


class BlobTooLarge(StorageError):
    """A blob is larger than the limit the caller set for it."""


class ShareError(FedTSSError):
    """Secret sharing failed: bad input shares or too few of them."""


class InvalidShare(ShareError):
    """A share is malformed: wrong length, wrong index, or values outside the field."""


class InvalidSealedShare(ShareError):
    """A sealed share did not open: wrong key, wrong context, or tampered bytes.

    Like Fernet's ``InvalidToken``, one class covers every cause on purpose.
    """


class NotEnoughShares(ShareError):
    """Fewer shares than the threshold (after excluding wrong ones) are available."""


class InconsistentShares(ShareError):
    """Shares do not lie on one polynomial of the expected degree.

    ``holders`` names the share holders found wrong, when they could be identified.
    """

    def __init__(self, message: str, holders: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.holders: tuple[int, ...] = tuple(sorted(holders))


class ChainError(FedTSSError):
    """A chain call failed: the node is unreachable or a transaction reverted."""


class ChainUnavailable(ChainError):
    """The node could not be reached or refused for now: asking again later can succeed.

    Raised by ``fedtss.chain`` for every node and transport failure (connection refused or
    reset, a timeout, an HTTP error of a proxy in front of the node, a receipt that did not come
    in time, the node refusing a transaction, as with "nonce too low"), as httpx maps its
    transport's errors; the original error is the ``__cause__``. A revert is never one.
    """


class ContractRevert(ChainError):
    """A contract call reverted with a decoded custom error, e.g. ``RoundWrongState``."""

    def __init__(self, name: str, args: dict[str, object], message: str | None = None) -> None:
        self.name = name
        self.args_by_name = dict(args)
        rendered = ", ".join(f"{k}={v}" for k, v in self.args_by_name.items())
        super().__init__(message or f"contract reverted: {name}({rendered})")
