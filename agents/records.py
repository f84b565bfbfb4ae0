"""What a committee member decided about other parties, as data: one JSON object a line.

    runs/demo/nodes/member-2/exclusions.jsonl
    {"by": "0x3C44…", "client": "0x976E…", "reason": "FormatError", "round": 3}
    {"by": "0x3C44…", "member": 4, "member_address": "0x15d3…", "reason": "InconsistentShares", "round": 3}

``by`` is the member that decided; ``client`` names an excluded client, ``member`` (the index)
and ``member_address`` a member whose aggregate share was left out; ``reason`` is an error
class name (``Unexpected…`` when no check foresaw it), never bytes. Logs are for people, these
records for programs: the explorer and ``fedtss round N`` read them. Each record is appended
with one ``write``; a reader skips a line it cannot parse (a line torn by a crash).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["EXCLUSIONS_FILE", "ExclusionRecord", "append_exclusion", "read_exclusions"]

#: The file, in a member's ``state_dir``, that holds its exclusion records.
EXCLUSIONS_FILE = "exclusions.jsonl"
_MAX_LINE_CHARS = 1024


@dataclass(frozen=True)
class ExclusionRecord:
    """One party a member left out of one round, and why."""

    round: int
    reason: str
    by: str
    client: str | None = None
    member: int | None = None
    member_address: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)


def append_exclusion(state_dir: Path, record: ExclusionRecord) -> None:
    """Append ``record`` to ``state_dir/exclusions.jsonl`` (created if needed); raises OSError."""
    path = Path(state_dir) / EXCLUSIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(record.to_json() + "\n")


def read_exclusions(path: Path, *, round_: int | None = None) -> list[ExclusionRecord]:
    """The well-formed records of ``path`` (of ``round_`` only, if given); a missing file has none."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        record = _parse(line)
        if record is not None and (round_ is None or record.round == round_):
            records.append(record)
    return records


def _parse(line: str) -> ExclusionRecord | None:
    if len(line) > _MAX_LINE_CHARS:
        return None
    try:
        document = json.loads(line)
        record = ExclusionRecord(**document)
    except (ValueError, TypeError):
        return None
    texts = (record.reason, record.by, record.client, record.member_address)
    if not isinstance(record.round, int) or not all(t is None or isinstance(t, str) for t in texts):
        return None
    if (record.client is None) == (record.member is None):
        return None  # exactly one party
    return record
