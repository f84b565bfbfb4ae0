"""Keep node URLs' secrets (API keys in the path or query, user:password) out of log lines.

A hosted node's URL usually carries its API key (``https://host/v3/<key>``), and web3.py and
the HTTP libraries under it print the full URL: web3's persistent providers at INFO
("Connecting to: <url>"), its HTTP providers and urllib3 at DEBUG (urllib3 prints the bare
path, ``"POST /v3/<key> HTTP/1.1"``). Filters on single loggers miss these (a logger's
filters do not see its children's records), so :func:`redact_node_urls` rewrites records
where every one of them is made: a log record factory, installed once per process.

- Records of the libraries' loggers (:data:`LIBRARY_LOGGERS`) have every URL in their
  message and traceback text cut to ``scheme://host:port``.
- Records of every logger have the secret parts of the URLs passed in (path, query,
  password) replaced by ``<redacted>``, so a bare path is caught too.

:func:`fedtss.chain.connect` and :class:`fedtss.chain.events.EventSource` register their
URL themselves; a process calls ``redact_node_urls(url, ...)`` once at start-up, right after
setting up logging, so that nothing logged before its first connection slips through.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["LIBRARY_LOGGERS", "REDACTED", "display_url", "redact_node_urls", "redact_urls"]

#: Top-level logger names of web3.py and the transports it uses.
LIBRARY_LOGGERS = frozenset({"web3", "urllib3", "requests", "aiohttp", "websockets"})
REDACTED = "<redacted>"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_TRAILING_PUNCTUATION = ".,;:!?)]}"
_FORMATTER = logging.Formatter()
_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # replaced whole (never mutated) so readers need no lock
_installed = False


def display_url(url: str) -> str:
    """Scheme, host and port of ``url``: never its path, query or credentials."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def redact_urls(text: str, *urls: str) -> str:
    """``text`` with every URL cut to ``scheme://host:port`` and the secret parts of ``urls``
    (and of the URLs registered with :func:`redact_node_urls`) replaced by ``<redacted>``."""
    return _rewrite(text, True, _secrets + _secret_parts(urls))


def redact_node_urls(*urls: str) -> None:
    """Redact node URLs in every log record of this process from now on (see the module doc).

    Idempotent; each call adds the secret parts of ``urls`` to those scrubbed everywhere.
    """
    global _secrets, _installed
    with _lock:
        new = tuple(s for s in _secret_parts(urls) if s not in _secrets)
        if new:
            _secrets = _secrets + new
        if not _installed:
            logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
            _installed = True


# ------------------------------------------------------------------------------ internals


def _secret_parts(urls: tuple[str, ...]) -> tuple[str, ...]:
    """The parts of ``urls`` that may hold a key: path (if more than ``/``), query, password."""
    parts: list[str] = []
    for url in urls:
        if not url:
            continue
        split = urlsplit(url)
        if split.path.strip("/"):
            parts.append(split.path.rstrip("/"))
        if split.query:
            parts.append(split.query)
        if split.password:
            parts.append(split.password)
    return tuple(parts)


def _shorten(match: re.Match[str]) -> str:
    url = match.group(0)
    kept = url.rstrip(_TRAILING_PUNCTUATION)
    return display_url(kept) + url[len(kept):]


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redacting(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record)
        return record

    return make


def _redact_record(record: logging.LogRecord) -> None:
    library = record.name.split(".", 1)[0] in LIBRARY_LOGGERS
    secrets = _secrets
    if not library and not secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: logging reports it when it is handled
        return
    redacted = _rewrite(message, library, secrets)
    if redacted != message:
        record.msg, record.args = redacted, ()
    if record.exc_info:
        text = _FORMATTER.formatException(record.exc_info)
        redacted = _rewrite(text, library, secrets)
        if redacted != text:
            record.exc_text = redacted  # formatters use exc_text when it is set


def _rewrite(text: str, library: bool, secrets: tuple[str, ...]) -> str:
    return _scrub(_URL.sub(_shorten, text) if library else text, secrets)
