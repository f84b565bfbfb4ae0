"""``python -m fedtss.cid FILE...``: print the CID of each file, one per line.

The output can be compared line by line with
``ipfs add --only-hash --quieter --cid-version 1 --raw-leaves --chunker size-262144 FILE``.
Reading files is the only thing here that touches the disk: :mod:`fedtss.cid` itself stays
pure. Files are memory-mapped, so an 80 MB blob is hashed without being read into a copy.
"""

from __future__ import annotations

import argparse
import mmap
import sys
from collections.abc import Sequence
from pathlib import Path

from fedtss.cid import compute_cid

__all__ = ["main"]

_EXIT_USAGE = 2


def _file_cid(path: Path) -> str:
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            return compute_cid(b"")  # an empty file cannot be memory-mapped
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            with memoryview(mapped) as view:
                return compute_cid(view)


def _unreadable(paths: Sequence[Path]) -> list[str]:
    """One message per path that is not a readable regular file."""
    problems = []
    for path in paths:
        if not path.exists():
            problems.append(f"no such file: {path}")
        elif not path.is_file():
            problems.append(f"not a regular file: {path}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Print one CID per file; exit 2 (printing nothing) if any file is missing."""
    parser = argparse.ArgumentParser(
        prog="python -m fedtss.cid",
        description="Print the CID `ipfs add --cid-version 1 --raw-leaves "
        "--chunker size-262144` gives each FILE, one per line.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    paths = parser.parse_args(argv).files
    problems = _unreadable(paths)
    for problem in problems:
        print(f"{parser.prog}: {problem}", file=sys.stderr)
    if problems:
        return _EXIT_USAGE
    for path in paths:
        print(_file_cid(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
