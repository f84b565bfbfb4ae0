"""Exclusion records: what a member decided, as data a program reads back exactly."""

from __future__ import annotations

from pathlib import Path

from agents.records import EXCLUSIONS_FILE, ExclusionRecord, append_exclusion, read_exclusions

BY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_appended_records_read_back_equal_and_by_round(tmp_path: Path) -> None:
    client = ExclusionRecord(3, "FormatError", by=BY, client="0x976EA74026E726554dB657fA54763abd0C3a0aa9")
    member = ExclusionRecord(4, "InconsistentShares", by=BY, member=2, member_address="0x" + "ab" * 20)
    append_exclusion(tmp_path / "member-1", client)
    append_exclusion(tmp_path / "member-1", member)
    path = tmp_path / "member-1" / EXCLUSIONS_FILE
    assert read_exclusions(path) == [client, member]
    assert read_exclusions(path, round_=4) == [member]
    assert path.read_text().splitlines()[0] == (
        '{"by": "%s", "client": "0x976EA74026E726554dB657fA54763abd0C3a0aa9", "reason": "FormatError", "round": 3}' % BY)


def test_a_line_that_is_not_one_record_is_skipped_not_fatal(tmp_path: Path) -> None:
    good = ExclusionRecord(1, "BlobNotFound", by=BY, client="0x" + "cd" * 20)
    path = tmp_path / EXCLUSIONS_FILE
    path.write_text("\n".join([
        good.to_json(),
        '{"round": 1, "reason": "x", "by": "y"}',  # names no party
        '{"round": 1, "reason": "x", "by": "y", "client": "a", "member": 2}',  # names two
        '{"round": "1", "reason": "x", "by": "y", "client": "a"}',  # round is not a number
        '{"round": 1, "reason": "x", "by": "y", "client": "a", "extra": 1}',  # unknown key
        "[1, 2]",
        '{"round": 1, "reason": "torn by a cra',
    ]))
    assert read_exclusions(path) == [good]
    assert read_exclusions(tmp_path / "absent.jsonl") == []
