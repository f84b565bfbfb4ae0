"""A store on an IPFS daemon's Kubo RPC API (``/api/v0``), for federations across machines.

Why a thin ``httpx`` client and not a library: we use four calls (``add``, ``cat``,
``pin/add``, ``block/stat``) and need two things no Python IPFS client offers. ``cat`` must
be streamed with the caller's size limit enforced while the bytes arrive (a CID announced on
chain may name a huge blob), and ``add`` must send every import parameter and an explicit
``Content-Type`` on its multipart part (js-ipfs rejects parts without one). PyPI's
``aioipfs`` 0.7.1 reads a whole ``cat`` into memory, is async-only (every other store call
here is synchronous), imports ``distutils`` (removed in Python 3.12) and brings aiohttp and
eight more dependencies; ``ipfshttpclient`` 0.7 refuses any daemon newer than kubo 0.8 and
is unmaintained. ``httpx`` is already a dependency.

What the client relies on, checked against js-ipfs 0.66.1 (``orchestration.ipfs_node``)
and documented for kubo:

- ``add`` gets ``cid-version=1, raw-leaves=true, chunker=size-262144, hash=sha2-256,
  pin=true`` explicitly (kubo's defaults changed between versions), and the CID it answers
  must equal :func:`fedtss.cid.compute_cid` of the bytes, compared decoded (js-ipfs answers
  in base58btc, kubo in base32); otherwise the daemon imported differently and ``put``
  raises rather than hand out a CID that other stores would compute differently.
- Every fetched blob is re-hashed against its CID before it is returned.
- Lookups pass the daemon a ``timeout``: a daemon looks for a CID it does not hold on the
  network until told to stop (js-ipfs even when started ``--offline``). ``has`` also passes
  ``offline=true``, so kubo answers from its local blocks at once.

Only CIDs and sizes are logged, never blob contents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import httpx

from fedtss.cid import compute_cid
from fedtss.errors import BlobNotFound, ConfigError, StorageError, StoreUnavailable
from fedtss.storage.base import canonical_cid, check_size_limit, too_large, verify_blob

__all__ = ["KuboStore", "IMPORT_PARAMS"]

log = logging.getLogger(__name__)

IMPORT_PARAMS: dict[str, str] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": "size-262144",
    "hash": "sha2-256",
    "pin": "true",
    "cid-base": "base32",
    "progress": "false",
}
"""``ipfs add`` parameters, all explicit, matching :func:`fedtss.cid.compute_cid`."""

_MISSING_MARKERS = ("not found", "could not find", "timed out", "deadline exceeded", "no link named")
"""How kubo (``block was not found locally (offline)``, ``context deadline exceeded``) and
js-ipfs (``request timed out``) say that a CID is not available."""

_ERROR_BODY_LIMIT = 64 * 1024


class KuboStore:
    """A :class:`~fedtss.storage.base.ContentStore` on the Kubo RPC API at ``api_url``.

    ``timeout``: seconds to connect, send, or wait between received bytes.
    ``fetch_timeout``: seconds the daemon may spend finding and sending one blob (``cat``,
    ``pin``) before it gives up; a blob it cannot find in time is :class:`BlobNotFound`.
    ``lookup_timeout``: seconds ``has`` lets the daemon check its local blocks.
    ``offline``: ask the daemon to use only blocks it already holds, for every call.
    """

    def __init__(self, api_url: str, *, timeout: float = 30.0, fetch_timeout: float = 60.0,
                 lookup_timeout: float = 1.0, offline: bool = False,
                 transport: httpx.BaseTransport | None = None) -> None:
        limits = {"timeout": timeout, "fetch_timeout": fetch_timeout, "lookup_timeout": lookup_timeout}
        for name, value in limits.items():
            if not value > 0:
                raise ConfigError(f"KuboStore {name} must be a positive number of seconds, got {value!r}")
        self.api_url = _base_url(api_url)
        self.fetch_timeout = fetch_timeout
        self.lookup_timeout = lookup_timeout
        self.offline = offline
        self._timeout = timeout
        self._client = httpx.Client(base_url=f"{self.api_url}/api/v0", timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r})"

    def close(self) -> None:
        """Close the HTTP connections (the daemon keeps running)."""
        self._client.close()

    def __enter__(self) -> KuboStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def put(self, data: bytes) -> str:
        """Add and pin ``data``; return its CID after checking the daemon computed the same one."""
        expected = compute_cid(data)
        files = {"file": ("blob", bytes(data), "application/octet-stream")}
        with self._request("add", params=IMPORT_PARAMS, files=files, cid=expected) as response:
            answer = _last_json_line(_read_limited(response), what=f"add of blob {expected}")
        reported = answer.get("Hash")
        if not isinstance(reported, str) or _decoded(reported) != expected:
            raise StorageError(
                f"the IPFS daemon at {self.api_url} stored a {len(data)}-byte blob as {reported!r}, "
                f"not {expected}: it did not import with {IMPORT_PARAMS}; check its version and config"
            )
        log.debug("added blob %s (%d bytes) to %s", expected, len(data), self.api_url)
        return expected

    def get(self, cid: str, *, max_bytes: int, timeout: float | None = None) -> bytes:
        """Stream the blob named ``cid``, stopping as soon as it exceeds ``max_bytes``; verify it.

        ``timeout`` replaces ``fetch_timeout`` for this blob (a member derives it from its deadline).
        """
        check_size_limit(max_bytes)
        cid = canonical_cid(cid)
        seconds = self.fetch_timeout if timeout is None else timeout
        if not seconds > 0:
            raise ConfigError(f"a fetch timeout must be a positive number of seconds, got {seconds!r}")
        params = {"arg": cid, "length": str(max_bytes + 1), **self._lookup_params(seconds)}
        received = bytearray()
        with self._request("cat", params=params, cid=cid, read_timeout=seconds) as response:
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) > max_bytes:  # leaving the block closes the connection
                    raise too_large(cid, None, max_bytes, source=f"IPFS daemon {self.api_url}")
        data = bytes(received)
        verify_blob(cid, data, source=f"IPFS daemon {self.api_url}")
        log.debug("fetched blob %s (%d bytes) from %s", cid, len(data), self.api_url)
        return data

    def has(self, cid: str) -> bool:
        """Whether the daemon holds the blob's root block now (it is not asked to look elsewhere)."""
        cid = canonical_cid(cid)
        params = {"arg": cid, "offline": "true", "timeout": _duration(self.lookup_timeout)}
        try:
            with self._request("block/stat", params=params, cid=cid,
                               read_timeout=self.lookup_timeout) as response:
                _read_limited(response)
            return True
        except BlobNotFound:
            return False

    def pin(self, cid: str) -> None:
        """Pin ``cid`` recursively (fetching it if needed) so the daemon's GC keeps it."""
        cid = canonical_cid(cid)
        params = {"arg": cid, "recursive": "true", **self._lookup_params(self.fetch_timeout)}
        with self._request("pin/add", params=params, cid=cid, read_timeout=self.fetch_timeout) as response:
            _read_limited(response)
        log.debug("pinned blob %s on %s", cid, self.api_url)

    def _lookup_params(self, seconds: float) -> dict[str, str]:
        params = {"timeout": _duration(seconds)}
        if self.offline:
            params["offline"] = "true"
        return params

    @contextmanager
    def _request(self, command: str, *, params: dict[str, str], cid: str,
                 files: dict[str, tuple[str, bytes, str]] | None = None,
                 read_timeout: float | None = None) -> Iterator[httpx.Response]:
        """POST one RPC command, streamed; turn every failure into a StorageError naming the daemon.

        A refused connection is :class:`StoreUnavailable` (the daemon is not running, or not
        here): worth trying again later. A timeout is not: a slow blob may be its sender's doing.
        """
        timeout = httpx.Timeout(self._timeout, read=self._timeout + (read_timeout or 0.0))
        try:
            with self._client.stream("POST", f"/{command}", params=params, files=files,
                                     timeout=timeout) as response:
                if response.status_code != 200:
                    raise self._error(command, cid, response)
                yield response
        except httpx.TimeoutException as error:
            raise StorageError(
                f"the IPFS daemon at {self.api_url} did not answer `{command}` for {cid} in time "
                f"({type(error).__name__}); raise the store's timeouts or check the daemon"
            ) from error
        except httpx.HTTPError as error:
            unreachable = StoreUnavailable if isinstance(error, httpx.ConnectError) else StorageError
            raise unreachable(
                f"cannot reach the IPFS daemon's RPC API at {self.api_url} ({error}); "
                f"is the daemon running and is this its API address (not its gateway)?"
            ) from error

    def _error(self, command: str, cid: str, response: httpx.Response) -> StorageError:
        message = _error_message(_read_limited(response))
        if response.status_code in (404, 405):
            return StorageError(f"{self.api_url} has no Kubo RPC `{command}` (HTTP {response.status_code}); "
                                f"is this the daemon's API address (port 5001 by default), not its gateway?")
        if any(marker in message.lower() for marker in _MISSING_MARKERS):
            return BlobNotFound(f"the IPFS daemon at {self.api_url} could not provide blob {cid}: {message}")
        return StorageError(f"the IPFS daemon at {self.api_url} refused `{command}` for {cid} "
                            f"(HTTP {response.status_code}): {message}")


def _base_url(api_url: str) -> str:
    """``http://host:port`` from what a user may write: trailing slash, ``/api/v0`` suffix."""
    url = api_url.strip().rstrip("/")
    if url.endswith("/api/v0"):
        url = url[: -len("/api/v0")]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the Kubo RPC API address must be http://HOST:PORT, got {api_url!r}")
    return url


def _duration(seconds: float) -> str:
    """A duration both kubo (Go ``time.ParseDuration``) and js-ipfs (``parse-duration``) read."""
    return f"{max(1, round(seconds * 1000))}ms"


def _decoded(cid: str) -> str | None:
    try:
        return canonical_cid(cid)
    except StorageError:
        return None


def _read_limited(response: httpx.Response) -> bytes:
    """Read a small answer (JSON status or error), refusing to buffer an endless one."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > _ERROR_BODY_LIMIT:
            raise StorageError(f"the IPFS daemon sent over {_ERROR_BODY_LIMIT} bytes where a short answer "
                               f"was expected")
    return bytes(body)


def _last_json_line(body: bytes, *, what: str) -> dict[str, object]:
    """``add`` answers one JSON object per line; the last one names the root."""
    lines = [line for line in body.splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError) as error:
        raise StorageError(f"the IPFS daemon's answer to the {what} is not JSON: {body[:200]!r}") from error
    if not isinstance(answer, dict):
        raise StorageError(f"the IPFS daemon's answer to the {what} is not a JSON object: {body[:200]!r}")
    return answer


def _error_message(body: bytes) -> str:
    """The ``Message`` of a Kubo RPC error body, or the raw text if it is not one."""
    try:
        message = json.loads(body).get("Message")
    except (ValueError, AttributeError):
        message = None
    if message:
        return str(message)
    return body[:200].decode("utf-8", "replace").strip() or "(empty answer)"
