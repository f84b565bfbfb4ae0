"""Every path and query parameter the explorer takes is parsed and bounded here, once.

A URL is untrusted input: anyone who can reach the explorer can type one. Each ``parse_*``
function returns a value the chain view can use as it is, or raises :class:`BadRequest` with a
message that says what was wrong and what the page takes instead; the app answers it with a
400 page. Nothing else comes out of these functions, so no parameter reaches ``int()``, the
node or a template unchecked: ``"²".isdigit()`` is true, ``int("²")`` is not a number, and
Python refuses to convert a decimal string of more than 4,300 digits.
"""

from __future__ import annotations

import re

from fedtss.chain import checksum_address
from fedtss.cid import parse_cid
from fedtss.errors import FedTSSError, FormatError

__all__ = [
    "BLOCK_NUMBER_MAX",
    "MAX_PARAM_CHARS",
    "UINT256_MAX",
    "BadRequest",
    "decimal_or_none",
    "parse_address",
    "parse_block_ref",
    "parse_cid_param",
    "parse_hash",
    "parse_round",
    "parse_search",
    "shown",
]

#: Round numbers are ``uint256`` on chain.
UINT256_MAX = 2**256 - 1
#: Block numbers are 64-bit quantities in JSON-RPC: a larger one is refused before the node sees it.
BLOCK_NUMBER_MAX = 2**64 - 1
#: The longest text a parameter may hold (a hash is 66 characters, a base32 CID v1 59).
MAX_PARAM_CHARS = 128

_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SHOWN_CHARS = 40


class BadRequest(FedTSSError):
    """A path or query parameter names nothing the explorer could show; the message says why."""


def shown(text: str) -> str:
    """``text`` as an error message quotes it: short, every invisible character made visible."""
    visible = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:_SHOWN_CHARS])
    return f"“{visible}…” ({len(text):,} characters)" if len(text) > _SHOWN_CHARS else f"“{visible}”"


def decimal_or_none(text: str, *, maximum: int = UINT256_MAX) -> int | None:
    """``text`` as a number if it is written in the digits 0-9 and at most ``maximum``; else None."""
    if not text or len(text) > len(str(maximum)) or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= maximum else None


def _parse_number(text: str, *, what: str, minimum: int, maximum: int, largest: str) -> int:
    if not text:
        raise BadRequest(f"the {what} is missing: write it in the digits 0-9")
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"{shown(text)} is not a {what}: write it in the digits 0-9, with no sign or spaces")
    number = decimal_or_none(text, maximum=maximum)
    if number is None:
        raise BadRequest(f"{shown(text)} is too large for a {what}: the largest is {largest}")
    if number < minimum:
        raise BadRequest(f"there is no {what} {number}: they start at {minimum}")
    return number


def parse_round(text: str) -> int:
    """A round number, 1 to 2**256 - 1."""
    return _parse_number(text, what="round number", minimum=1, maximum=UINT256_MAX, largest="2**256 - 1")


def parse_block_ref(text: str) -> int | str:
    """A block number (0 to 2**64 - 1) or a block hash."""
    if text[:2].lower() == "0x":
        return parse_hash(text, what="block hash")
    if text and not (text.isascii() and text.isdigit()):
        raise BadRequest(f"{shown(text)} is not a block number or hash: a block number is written in the "
                         "digits 0-9, a block hash is 0x followed by 64 hex digits")
    return _parse_number(text, what="block number", minimum=0, maximum=BLOCK_NUMBER_MAX, largest="2**64 - 1")


def parse_hash(text: str, *, what: str = "transaction hash") -> str:
    """A 32-byte hash as ``0x`` and 64 hex digits, lowercased."""
    if not _HASH.fullmatch(text):
        raise BadRequest(f"{shown(text)} is not a {what}: a {what} is 0x followed by 64 hex digits")
    return text.lower()


def parse_address(text: str) -> str:
    """An account or contract address, checksummed."""
    if not _ADDRESS.fullmatch(text):
        raise BadRequest(f"{shown(text)} is not an address: an address is 0x followed by 40 hex digits")
    return checksum_address(text)


def parse_cid_param(text: str) -> str:
    """A CID this project uses, in its canonical base32 v1 spelling."""
    if len(text) <= MAX_PARAM_CHARS:
        try:
            return parse_cid(text)
        except FormatError:
            pass
    raise BadRequest(f"{shown(text)} is not a CID of this federation: a CID v1 (b…) or v0 (Qm…) of a "
                     "sha2-256 digest, codec raw or dag-pb")


def parse_search(text: str) -> str:
    """The search box's text, stripped; empty when nothing was typed."""
    query = text.strip()
    if len(query) > MAX_PARAM_CHARS:
        raise BadRequest(f"the search text is {len(query):,} characters long; nothing the search box "
                         f"takes is longer than {MAX_PARAM_CHARS}")
    return query
