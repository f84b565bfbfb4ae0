"""fedtss.cid against an independent implementation, published vectors and its own contract.

The independent implementation is npm's ipfs-unixfs-importer 17.1.1 (tests/fedtss/
unixfs_cid.mjs), run once per test session for every case. The published vectors in
tests/vectors/cid.json come from Kubo's own tests (Go's UnixFS builder).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given
from hypothesis import strategies as st
from multiformats import CID

from fedtss.cid import (
    CHUNK_SIZE,
    DAG_PB,
    MAX_LINKS,
    RAW,
    cid_from_parts,
    is_canonical_cid,
    cid_to_parts,
    compute_cid,
    is_valid_cid,
    parse_cid,
)
from fedtss.errors import ConfigError, FormatError

REPO = Path(__file__).resolve().parents[2]
NODE_SCRIPT = Path(__file__).with_name("unixfs_cid.mjs")
VECTORS = json.loads((REPO / "tests" / "vectors" / "cid.json").read_text())["vectors"]
EMPTY_RAW_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def chacha20_bytes(size: int, seed: str) -> bytes:
    """Kubo's deterministic test bytes: the ChaCha20 keystream under key sha256(seed)."""
    key = hashlib.sha256(seed.encode()).digest()
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return encryptor.update(bytes(size))


class Case(NamedTuple):
    name: str
    size: int
    chunk_size: int = CHUNK_SIZE
    max_links: int = MAX_LINKS


C = CHUNK_SIZE
# The project's real parameters, around every boundary of the layout, up to ~50 MB.
REAL_CASES = [
    Case("empty", 0),
    Case("one byte", 1),
    Case("one byte short of a chunk", C - 1),
    Case("exactly one chunk", C),
    Case("one chunk and a byte", C + 1),
    Case("several chunks", 3 * C + 5),
    Case("exactly 174 chunks (one full node)", 174 * C),
    Case("175 chunks (two levels, lone last leaf)", 174 * C + 1),
    Case("175 full chunks", 175 * C),
    Case("about 50 MB", 190 * C + 12_345),
]
# Small chunks make deep trees cheap: the real fan-out at three levels, and fan-out 3 to depth 5.
DEEP_CASES = [
    Case("174*174 one-byte chunks (two full levels)", 174 * 174, chunk_size=1),
    Case("174*174+1 one-byte chunks (three levels)", 174 * 174 + 1, chunk_size=1),
    *(
        Case(f"{size} bytes in 16-byte chunks, 3 links", size, chunk_size=16, max_links=3)
        for size in (0, 1, 16, 17, 32, 48, 49, 144, 145, 432, 433, 1296, 1297, 2000)
    ),
]
_sweep = random.Random(20240611)
SWEEP_CASES = [
    Case(f"sweep {i}", _sweep.randrange(0, 5000), _sweep.randrange(1, 300), _sweep.randrange(2, 12))
    for i in range(40)
]
ALL_CASES = REAL_CASES + DEEP_CASES + SWEEP_CASES


@pytest.fixture(scope="module")
def blob_source() -> bytes:
    """One deterministic byte stream; every case's blob is a prefix of it."""
    return chacha20_bytes(max(case.size for case in ALL_CASES), "fedtss-cid-tests")


@pytest.fixture(scope="module")
def node_cids(tmp_path_factory: pytest.TempPathFactory, blob_source: bytes) -> dict[Case, str]:
    """CIDs of every case from ipfs-unixfs-importer, in a single node process."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: `make install` sets up the Node toolchain")
    folder = tmp_path_factory.mktemp("cid-blobs")
    argv = [node, str(NODE_SCRIPT)]
    for index, case in enumerate(ALL_CASES):
        path = folder / f"{index}.bin"
        path.write_bytes(memoryview(blob_source)[: case.size])
        argv += ["--chunk-size", str(case.chunk_size), "--max-children", str(case.max_links)]
        argv.append(str(path))
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    cids = result.stdout.split()
    if result.returncode != 0 or len(cids) != len(ALL_CASES):
        raise RuntimeError(
            f"unixfs_cid.mjs exited {result.returncode} with {len(cids)} CIDs for "
            f"{len(ALL_CASES)} files: {result.stderr[-2000:]}"
        )
    return dict(zip(ALL_CASES, cids, strict=True))


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.name)
def test_compute_cid_matches_ipfs_unixfs_importer(
    case: Case, node_cids: dict[Case, str], blob_source: bytes
) -> None:
    blob = memoryview(blob_source)[: case.size]
    cid = compute_cid(blob, chunk_size=case.chunk_size, max_links=case.max_links)
    assert cid == node_cids[case]


def test_node_reference_gives_the_published_empty_block_cid(node_cids: dict[Case, str]) -> None:
    """Guards the comparison itself: the node script must use the parameters it claims."""
    assert node_cids[REAL_CASES[0]] == EMPTY_RAW_CID


def _vector_input(spec: dict) -> bytes:
    if spec["kind"] == "utf8":
        return spec["text"].encode()
    return chacha20_bytes(spec["size"], spec["seed"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda vector: vector["name"])
def test_compute_cid_matches_published_vectors(vector: dict) -> None:
    data = _vector_input(vector["input"])
    cid = compute_cid(data, chunk_size=vector["chunk_size"], max_links=vector["max_links"])
    assert cid == vector["cid"]


def test_blob_up_to_one_chunk_is_a_single_raw_block() -> None:
    for size in (0, 1, CHUNK_SIZE):
        data = bytes(size)
        assert cid_to_parts(compute_cid(data)) == (RAW, hashlib.sha256(data).digest())


def test_blob_over_one_chunk_is_a_dag_pb_root() -> None:
    assert cid_to_parts(compute_cid(bytes(CHUNK_SIZE + 1)))[0] == DAG_PB


def test_defaults_are_the_projects_ipfs_add_parameters() -> None:
    assert (CHUNK_SIZE, MAX_LINKS) == (262_144, 174)


@given(st.binary(max_size=600), st.integers(1, 64), st.integers(2, 6))
def test_every_bytes_like_form_of_a_blob_has_the_same_cid(
    data: bytes, chunk: int, links: int
) -> None:
    expected = compute_cid(data, chunk_size=chunk, max_links=links)
    forms = [bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)]
    if len(data) % 4 == 0:
        forms.append(np.frombuffer(data, dtype=np.float32).reshape(-1, 1))
    for form in forms:
        assert compute_cid(form, chunk_size=chunk, max_links=links) == expected


@given(st.binary(min_size=1, max_size=300))
def test_changing_one_byte_changes_the_cid(data: bytes) -> None:
    flipped = bytes([data[0] ^ 1]) + data[1:]
    small = {"chunk_size": 7, "max_links": 3}
    assert compute_cid(data, **small) != compute_cid(flipped, **small)


def test_compute_cid_leaves_no_export_on_the_callers_buffer() -> None:
    """A caller must be able to resize (or close an mmap) right after hashing."""
    buffer = bytearray(3 * 100 + 1)
    compute_cid(buffer, chunk_size=100, max_links=2)
    buffer.extend(b"x")  # raises BufferError if a view of it were still alive


def test_compute_cid_refuses_text_and_non_contiguous_buffers() -> None:
    with pytest.raises(FormatError, match="bytes-like"):
        compute_cid("hello")  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="contiguous"):
        compute_cid(memoryview(bytes(10))[::2])


@pytest.mark.parametrize(("chunk_size", "max_links"), [(0, 174), (262_144, 1), (-1, 5)])
def test_compute_cid_refuses_a_layout_that_cannot_terminate(
    chunk_size: int, max_links: int
) -> None:
    with pytest.raises(ConfigError):
        compute_cid(b"abc", chunk_size=chunk_size, max_links=max_links)


@given(st.sampled_from([RAW, DAG_PB]), st.binary(min_size=32, max_size=32))
def test_cid_parts_round_trip(codec: int, digest: bytes) -> None:
    cid = cid_from_parts(codec, digest)
    assert cid.startswith("b")
    assert cid_to_parts(cid) == (codec, digest)
    assert parse_cid(cid) == cid


def test_cid_from_parts_refuses_other_codecs_and_digest_sizes() -> None:
    with pytest.raises(FormatError, match="raw \\(0x55\\) or dag-pb \\(0x70\\)"):
        cid_from_parts(0x71, bytes(32))
    with pytest.raises(FormatError, match="32 bytes"):
        cid_from_parts(RAW, bytes(31))


def test_parse_cid_accepts_other_spellings_and_returns_base32_v1() -> None:
    empty = CID.decode(EMPTY_RAW_CID)
    assert parse_cid(str(empty.set(base="base58btc"))) == EMPTY_RAW_CID
    assert parse_cid(EMPTY_RAW_CID.upper()) == EMPTY_RAW_CID
    v0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"  # Kubo add_test.go: "hello world", v0
    assert parse_cid(v0) == str(CID.decode(v0).set(version=1, base="base32"))
    assert cid_to_parts(v0)[0] == DAG_PB


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a CID"),
        ("hello", "not a CID"),
        (EMPTY_RAW_CID[:-1], "not a CID"),
        ("bafkqaaa", "sha2-256"),  # identity multihash of the empty blob
        # the empty blob's digest under codec dag-cbor
        ("bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "raw or dag-pb"),
        (str(CID("base32", 1, "raw", ("sha2-512", bytes(64)))), "sha2-256"),
    ],
)
def test_parse_cid_refuses_what_the_project_does_not_store(text: str, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_cid(text)
    assert not is_valid_cid(text)


@given(st.one_of(st.text(max_size=80), st.binary(max_size=40), st.none(), st.integers()))
def test_parse_cid_raises_only_format_error_on_arbitrary_input(text: object) -> None:
    try:
        parse_cid(text)  # type: ignore[arg-type]
    except FormatError:
        assert not is_valid_cid(text)
    else:
        assert is_valid_cid(text)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedtss.cid", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_one_cid_per_file_in_order(tmp_path: Path) -> None:
    blobs = {
        "big.bin": chacha20_bytes(2 * CHUNK_SIZE + 3, "cli"),
        "empty.bin": b"",
        "hello.txt": b"hello world\n",
    }
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    result = _run_cli(*(str(tmp_path / name) for name in blobs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [compute_cid(blob) for blob in blobs.values()]


def test_cli_exits_2_naming_a_missing_file_and_prints_no_cid(tmp_path: Path) -> None:
    present = tmp_path / "present.bin"
    present.write_bytes(b"x")
    result = _run_cli(str(present), str(tmp_path / "missing.bin"), str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"no such file: {tmp_path / 'missing.bin'}" in result.stderr
    assert f"not a regular file: {tmp_path}" in result.stderr


def test_cli_without_files_prints_usage_and_exits_2() -> None:
    result = _run_cli()
    assert result.returncode == 2
    assert "usage: python -m fedtss.cid" in result.stderr


# --------------------------------------------- written-out base32 equals multiformats'


@given(codec=st.sampled_from([0x55, 0x70]), digest=st.binary(min_size=32, max_size=32))
def test_a_cid_written_out_is_the_text_multiformats_gives(codec: int, digest: bytes) -> None:
    assert cid_from_parts(codec, digest) == str(CID("base32", 1, codec, ("sha2-256", digest)))


def _parse_through_multiformats(text: str) -> str | None:
    try:
        parsed = CID.decode(text)
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    if parsed.hashfun.code != 0x12 or len(parsed.raw_digest) != 32 or parsed.codec.code not in (0x55, 0x70):
        return None
    return str(CID("base32", 1, parsed.codec.code, ("sha2-256", bytes(parsed.raw_digest))))


@given(st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda d: cid_from_parts(0x55, d)),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567ABC=", min_size=58, max_size=58).map(lambda t: "b" + t),
    st.builds(lambda d, i, c: (t := cid_from_parts(0x70, d))[:i] + c + t[i + 1:],
              st.binary(min_size=32, max_size=32), st.integers(0, 58), st.sampled_from("abqz27A")),
))
def test_parse_cid_agrees_with_multiformats_on_canonical_looking_text(text: str) -> None:
    expected = _parse_through_multiformats(text)
    if expected is None:
        with pytest.raises(FormatError):
            parse_cid(text)
    else:
        assert parse_cid(text) == expected


def test_parsing_and_computing_cids_leave_no_reference_cycle_holding_the_callers_frame() -> None:
    # multiformats' validation leaves cycles holding every frame above it, the blob a store
    # just read included, until the garbage collector runs: the project's paths avoid it.
    import gc

    gc.collect()
    gc.disable()
    try:
        for blob in (b"a", b"b" * 10):
            assert is_canonical_cid(parse_cid(compute_cid(blob)))
        assert gc.collect() == 0
    finally:
        gc.enable()
