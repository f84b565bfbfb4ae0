"""Content identifiers of blobs, exactly as ``ipfs add`` computes them.

A blob stored locally must keep its CID when it is later added to IPFS, so the CID is
computed the way the project always runs ``ipfs add``, with every parameter explicit (kubo's
implicit defaults changed between versions)::

    ipfs add --cid-version 1 --raw-leaves --chunker size-262144   # balanced layout

That is: the blob is cut into 256 KiB chunks, each a raw block (multicodec ``raw``, 0x55).
A blob of one chunk (the empty blob included) is its own CID, ``bafkrei...``. Otherwise the
chunks are linked, at most 174 per node, by UnixFS file nodes (``dag-pb``, 0x70), level by
level until one root remains. Every CID is v1, sha2-256, printed in base32 (multibase
``b``). The multiformats parts come from PyPI ``multiformats``; only the tiny protobuf of a
file node is hand-written (see :mod:`fedtss.cid._unixfs`).

The chain stores a CID as ``(uint64 codec, bytes32 digest)``: see :func:`cid_to_parts` and
:func:`cid_from_parts`. ``python -m fedtss.cid FILE...`` prints the CID of each file.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from multiformats import CID

from fedtss.cid._unixfs import Link, encode_file_node
from fedtss.errors import ConfigError, FormatError

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "RAW",
    "DAG_PB",
    "compute_cid",
    "parse_cid",
    "is_valid_cid",
    "is_canonical_cid",
    "cid_to_parts",
    "cid_from_parts",
]

CHUNK_SIZE = 262_144
"""Bytes per leaf: ``--chunker size-262144``."""

MAX_LINKS = 174
"""Links per node of the balanced layout (go-unixfs and js ipfs-unixfs-importer default)."""

RAW = 0x55
"""Multicodec of a raw leaf; the CID of a blob of at most one chunk."""

DAG_PB = 0x70
"""Multicodec of a UnixFS file node; the CID of a blob of more than one chunk."""

_SHA2_256 = 0x12
_DIGEST_SIZE = 32
_CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}

Buffer = bytes | bytearray | memoryview


def _binary_prefix(codec: int) -> bytes:
    """The bytes a binary CID v1 sha2-256 of ``codec`` starts with, before its digest."""
    return bytes(CID("base32", 1, codec, ("sha2-256", bytes(_DIGEST_SIZE))))[:-_DIGEST_SIZE]


_RAW_PREFIX = _binary_prefix(RAW)
_DAG_PB_PREFIX = _binary_prefix(DAG_PB)
_PREFIXES = {RAW: _RAW_PREFIX, DAG_PB: _DAG_PB_PREFIX}
#: Characters of a canonical CID's text: "b" and the unpadded base32 of prefix + digest.
_CANONICAL_LENGTH = 1 + (8 * (len(_RAW_PREFIX) + _DIGEST_SIZE) + 4) // 5
_BASE32_PADDING = -(_CANONICAL_LENGTH - 1) % 8


def compute_cid(
    data: Buffer, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS
) -> str:
    """Return the CID ``ipfs add --cid-version 1 --raw-leaves --chunker size-262144`` gives.

    ``data`` is hashed in one pass over zero-copy slices, so an 80 MB blob costs about one
    sha256 of 80 MB. ``chunk_size`` and ``max_links`` exist so that tests can build deep
    trees from small blobs; any value other than the defaults gives CIDs that the project's
    ``ipfs add`` will not reproduce.
    """
    _check_layout(chunk_size, max_links)
    # Released on exit, so that a caller can close the mmap or buffer behind ``data`` at once.
    with _as_byte_view(data) as view:
        if len(view) <= chunk_size:
            return cid_from_parts(RAW, hashlib.sha256(view).digest())
        level = _leaf_links(view, chunk_size)
    while len(level) > 1:
        level = [_parent_link(level[i : i + max_links]) for i in range(0, len(level), max_links)]
    return cid_from_parts(DAG_PB, level[0].cid[len(_DAG_PB_PREFIX) :])


def _as_byte_view(data: Buffer) -> memoryview:
    """A flat byte view of ``data`` without copying it."""
    try:
        view = memoryview(data)
    except TypeError as error:
        kind = type(data).__name__
        raise FormatError(f"compute_cid needs bytes-like data, got {kind}") from error
    if not view.c_contiguous:
        raise FormatError("compute_cid needs a contiguous buffer; pass bytes(data) instead")
    if view.format == "B" and view.ndim == 1:
        return view
    with view:  # an empty view cannot be cast, and has nothing to hash anyway
        return view.cast("B") if view.nbytes else memoryview(b"")


def _check_layout(chunk_size: int, max_links: int) -> None:
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1 byte, got {chunk_size}")
    if max_links < 2:
        raise ConfigError(f"max_links must be at least 2 so the tree can shrink, got {max_links}")


def _leaf_links(view: memoryview, chunk_size: int) -> list[Link]:
    """Hash each chunk as a raw block; the only pass over the data."""
    sha256 = hashlib.sha256
    links = []
    for start in range(0, len(view), chunk_size):
        chunk = view[start : start + chunk_size]
        links.append(Link(_RAW_PREFIX + sha256(chunk).digest(), len(chunk), len(chunk)))
    return links


def _parent_link(children: Sequence[Link]) -> Link:
    """Build the file node over ``children`` and return the link its parent will hold.

    Like go-unixfs and ipfs-unixfs-importer, a lone last child is still wrapped in a node
    of its own, so every leaf of a balanced tree sits at the same depth.
    """
    block = encode_file_node(children)
    return Link(
        cid=_DAG_PB_PREFIX + hashlib.sha256(block).digest(),
        tsize=len(block) + sum(child.tsize for child in children),
        filesize=sum(child.filesize for child in children),
    )


def cid_from_parts(codec: int, digest: bytes) -> str:
    """Return the base32 CID v1 of a sha2-256 ``digest`` with multicodec ``codec``.

    This is how a CID read from the chain as ``(uint64 codec, bytes32 digest)`` becomes the
    text a content store looks up, so both values are checked as untrusted input.
    """
    if codec not in _CODEC_NAMES:
        raise FormatError(
            f"CID codec must be raw (0x55) or dag-pb (0x70), got {_describe_codec(codec)}"
        )
    if not isinstance(digest, (bytes, bytearray, memoryview)) or len(digest) != _DIGEST_SIZE:
        raise FormatError(
            f"CID digest must be {_DIGEST_SIZE} bytes of sha2-256, got {digest!r:.80}"
        )
    return _base32_text(_PREFIXES[codec] + bytes(digest))


def _base32_text(binary: bytes) -> str:
    """Multibase base32 (``b``, lower case, unpadded) of a binary CID.

    Written out rather than built through ``multiformats.CID``: its validation raises and
    catches exceptions internally, leaving reference cycles that hold every caller's frame
    (and the blob a store just read) until the garbage collector runs. Equal to multiformats'
    text for every digest (tests/fedtss/test_cid.py checks it).
    """
    return "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=")


def _canonical_fast(text: str) -> str | None:
    """``text`` itself if it is already the canonical base32 CID v1 of a sha2-256 digest with
    codec raw or dag-pb (what the project stores and compares), else None."""
    if len(text) != _CANONICAL_LENGTH or text[0] != "b" or not text[1:].isalnum() or text != text.lower():
        return None
    try:
        binary = base64.b32decode(text[1:].upper() + "=" * _BASE32_PADDING)
    except ValueError:
        return None
    if binary[:-_DIGEST_SIZE] not in _PREFIXES.values() or _base32_text(binary) != text:
        return None
    return text


def is_canonical_cid(text: object) -> bool:
    """Whether ``text`` is exactly the canonical spelling (base32 CID v1, sha2-256, raw or
    dag-pb) the project stores and compares: checked without building a ``multiformats.CID``."""
    return isinstance(text, str) and _canonical_fast(text) is not None


def _describe_codec(codec: object) -> str:
    return hex(codec) if isinstance(codec, int) else repr(codec)


def cid_to_parts(cid: str) -> tuple[int, bytes]:
    """Return ``(multicodec code, 32-byte sha2-256 digest)``: the form the chain stores."""
    parsed = _decode(cid)
    return parsed.codec.code, bytes(parsed.raw_digest)


def parse_cid(text: str) -> str:
    """Check ``text`` is a CID this project uses and return its canonical base32 v1 form.

    Any multibase and CID v0 (``Qm...``, which is always dag-pb sha2-256) are accepted, so a
    CID copied from any IPFS tool parses; the result is always ``b...`` base32 v1, the one
    spelling the project stores and compares.
    """
    if isinstance(text, str) and (canonical := _canonical_fast(text)) is not None:
        return canonical
    return cid_from_parts(*cid_to_parts(text))


def is_valid_cid(text: object) -> bool:
    """Whether ``text`` is a CID v1 (or v0) sha2-256 of codec raw or dag-pb."""
    try:
        _decode(text)
    except FormatError:
        return False
    return True


def _decode(text: object) -> CID:
    if not isinstance(text, str):
        raise FormatError(f"a CID must be given as text, got {type(text).__name__}")
    try:
        cid = CID.decode(text)
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise FormatError(f"not a CID: {text!r:.80} ({error})") from error
    if cid.hashfun.code != _SHA2_256 or len(cid.raw_digest) != _DIGEST_SIZE:
        raise FormatError(f"CID {text!r:.80} must use a sha2-256 digest, not {cid.hashfun.name}")
    if cid.codec.code not in _CODEC_NAMES:
        raise FormatError(f"CID {text!r:.80} must have codec raw or dag-pb, not {cid.codec.name}")
    return cid
