"""The two protobuf messages of a UnixFS file node, encoded by hand.

Only one shape is ever written: a dag-pb ``PBNode`` whose links all have an empty name,
wrapping a UnixFS ``Data`` message of type ``File`` with no inline data, no mode and no
mtime. That is too small a subset to justify a protobuf dependency, and writing it out makes
the byte layout, which decides the CID, explicit. The layout follows what
ipfs-unixfs-importer 17.1.1 produces through @ipld/dag-pb 4 (``encodeNode``) and
ipfs-unixfs 13 (``UnixFS.marshal``), which go-unixfs produces as well:

    PBNode  = Links (field 2, repeated, in child order) then Data (field 1)
    PBLink  = Hash (field 1, binary CID), Name (field 2, always present, empty), Tsize (field 3)
    Data    = Type (field 1) = File (2), filesize (field 3), blocksizes (field 4, repeated,
              unpacked, one per link)

Varints come from PyPI ``multiformats`` (unsigned LEB128 is also protobuf's varint).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from multiformats import varint

__all__ = ["Link", "encode_file_node"]

# Tag bytes: (field number << 3) | wire type; 0 = varint, 2 = length-delimited.
_PBNODE_DATA = b"\x0a"
_PBNODE_LINK = b"\x12"
_PBLINK_HASH = b"\x0a"
_PBLINK_EMPTY_NAME = b"\x12\x00"
_PBLINK_TSIZE = b"\x18"
_UNIXFS_TYPE_FILE = b"\x08\x02"
_UNIXFS_FILESIZE = b"\x18"
_UNIXFS_BLOCKSIZE = b"\x20"


class Link(NamedTuple):
    """One child of a file node, as its parent records it.

    ``tsize`` is the cumulative size of the child's whole DAG (block bytes of every node
    below it, leaves included); ``filesize`` is the number of file bytes it holds.
    """

    cid: bytes
    tsize: int
    filesize: int


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint.encode(len(payload)) + payload


def _encode_link(link: Link) -> bytes:
    body = b"".join(
        (
            _length_delimited(_PBLINK_HASH, link.cid),
            _PBLINK_EMPTY_NAME,
            _PBLINK_TSIZE,
            varint.encode(link.tsize),
        )
    )
    return _length_delimited(_PBNODE_LINK, body)


def _encode_unixfs_file(children: Sequence[Link]) -> bytes:
    parts = [_UNIXFS_TYPE_FILE, _UNIXFS_FILESIZE, varint.encode(sum(c.filesize for c in children))]
    for child in children:
        parts += (_UNIXFS_BLOCKSIZE, varint.encode(child.filesize))
    return b"".join(parts)


def encode_file_node(children: Sequence[Link]) -> bytes:
    """Return the dag-pb block of a UnixFS file node linking ``children`` in order."""
    links = b"".join(_encode_link(child) for child in children)
    return links + _length_delimited(_PBNODE_DATA, _encode_unixfs_file(children))
