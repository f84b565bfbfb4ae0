"""Tests for fedtss.formats: round trips, canonical bytes, vectors, and fuzzed malformed input."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from multiformats import CID, multihash

from fedtss.errors import FormatError
from fedtss.formats import (
    Manifest,
    ModelLayout,
    RoundTerms,
    VectorKind,
    check_manifest,
    decode_field_vector,
    decode_model,
    decode_model_metrics,
    encode_field_vector,
    encode_manifest,
    encode_model,
    field_vector_bytes,
    flatten_model,
    parse_manifest,
    shared_vector_length,
    unflatten_model,
)
from fedtss.quantize import QuantizationConfig

P = 2**61 - 1
VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "formats.json").read_text())
LIMIT = 1 << 20
SHARE = VectorKind.SHARE


def raw_cid(label: str, codec: str = "raw") -> str:
    return str(CID("base32", 1, codec, multihash.digest(label.encode(), "sha2-256")))


MODEL = {
    "fc2.weight": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "fc1.bias": np.array([-1.0, 2.0], dtype=np.float32),
    "fc1.weight": np.ones((2, 5), dtype=np.float32),
}
MODEL_BLOB = encode_model(MODEL)
VECTOR_BLOB = encode_field_vector(np.array([0, 1, P - 1, 42], dtype=np.uint64), kind=SHARE)
MANIFEST = Manifest(
    chain_id=31337,
    contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    round=3,
    client="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    n=3,
    t=2,
    vector_length=11,
    quantization=QuantizationConfig(clip_norm=2.5, fractional_bits=12),
    share_cids=(raw_cid("a"), raw_cid("b", "dag-pb"), raw_cid("c")),
)
MANIFEST_BLOB = encode_manifest(MANIFEST)


# -- field vectors ------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(values=arrays(np.uint64, st.integers(1, 300), elements=st.integers(0, P - 1)),
       kind=st.sampled_from(VectorKind))
def test_field_vector_round_trips(values: np.ndarray, kind: VectorKind) -> None:
    blob = encode_field_vector(values, kind=kind)
    assert len(blob) == 16 + 8 * values.size
    decoded = decode_field_vector(blob, kind=kind, max_bytes=LIMIT, expected_length=values.size)
    assert decoded.dtype == np.uint64 and np.array_equal(decoded, values)


def test_field_vector_header_is_the_documented_layout() -> None:
    assert VECTOR_BLOB[:16] == b"FTFV" + bytes([1, 1, 0, 0]) + struct.pack("<Q", 4)
    assert VECTOR_BLOB[16:24] == bytes(8) and VECTOR_BLOB[-8:] == struct.pack("<Q", 42)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (VECTOR_BLOB[:10], "truncated"),
        (VECTOR_BLOB[:-1], "truncated"),
        (VECTOR_BLOB + b"\x00", "trailing"),
        (b"XXXX" + VECTOR_BLOB[4:], "magic"),
        (VECTOR_BLOB[:4] + b"\x02" + VECTOR_BLOB[5:], "version 2"),
        (VECTOR_BLOB[:5] + b"\x02" + VECTOR_BLOB[6:], "kind 2"),
        (VECTOR_BLOB[:6] + b"\x01" + VECTOR_BLOB[7:], "reserved"),
        (VECTOR_BLOB[:8] + bytes(8), "length is 0"),
        (VECTOR_BLOB[:16] + struct.pack("<Q", P) + VECTOR_BLOB[24:], ">= p"),
        (VECTOR_BLOB[:8] + struct.pack("<Q", 2**61) + VECTOR_BLOB[16:], "truncated"),
    ],
)
def test_malformed_field_vector_is_rejected_with_the_reason(blob: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        decode_field_vector(blob, kind=SHARE, max_bytes=LIMIT)


def test_field_vector_limits_are_enforced() -> None:
    with pytest.raises(FormatError, match="exceeds the limit"):
        decode_field_vector(VECTOR_BLOB, kind=SHARE, max_bytes=len(VECTOR_BLOB) - 1)
    with pytest.raises(FormatError, match="expected 5"):
        decode_field_vector(VECTOR_BLOB, kind=SHARE, max_bytes=LIMIT, expected_length=5)
    with pytest.raises(FormatError, match="must be bytes"):
        decode_field_vector("text", kind=SHARE, max_bytes=LIMIT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values",
    [np.array([P], dtype=np.uint64), np.array([1], dtype=np.int64), np.zeros(0, dtype=np.uint64),
     np.zeros((2, 2), dtype=np.uint64)],
)
def test_encoding_refuses_values_that_are_not_a_field_vector(values: np.ndarray) -> None:
    with pytest.raises(FormatError):
        encode_field_vector(values, kind=SHARE)


def test_decoded_field_vector_is_a_read_only_view() -> None:
    decoded = decode_field_vector(VECTOR_BLOB, kind=SHARE, max_bytes=LIMIT)
    assert not decoded.flags.writeable


# -- models -------------------------------------------------------------------------------


def test_model_round_trips_in_name_order() -> None:
    decoded = decode_model(MODEL_BLOB, max_bytes=LIMIT)
    assert list(decoded) == ["fc1.bias", "fc1.weight", "fc2.weight"]
    for name, tensor in MODEL.items():
        assert decoded[name].dtype == np.float32 and decoded[name].shape == tensor.shape
        assert np.array_equal(decoded[name], tensor)


def test_equal_models_encode_to_identical_bytes_whatever_the_insertion_order() -> None:
    reordered = {name: MODEL[name].copy() for name in reversed(list(MODEL))}
    transposed = {**MODEL, "fc2.weight": np.asfortranarray(MODEL["fc2.weight"])}
    assert encode_model(reordered) == MODEL_BLOB == encode_model(transposed)


def test_model_data_starts_eight_byte_aligned_after_zero_padding() -> None:
    (header_length,) = struct.unpack_from("<I", MODEL_BLOB, 8)
    data_start = len(MODEL_BLOB) - 4 * sum(t.size for t in MODEL.values())
    assert data_start % 8 == 0 and data_start - (12 + header_length) < 8
    assert set(MODEL_BLOB[12 + header_length : data_start]) <= {0}


def _with_header(header: bytes, blob: bytes = MODEL_BLOB) -> bytes:
    """Replace the JSON header of a model blob, keeping its data and fixing the padding."""
    (old_length,) = struct.unpack_from("<I", blob, 8)
    old_start = 12 + old_length + (-(12 + old_length) % 8)
    padding = bytes(-(12 + len(header)) % 8)
    return blob[:8] + struct.pack("<I", len(header)) + header + padding + blob[old_start:]


def _header(blob: bytes = MODEL_BLOB) -> bytes:
    (length,) = struct.unpack_from("<I", blob, 8)
    return blob[12 : 12 + length]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.replace(b",", b", ", 1), "canonical"),
        (lambda h: h.replace(b'"offset":2', b'"offset":3', 1), "canonical"),
        (lambda h: h.replace(b"fc1.bias", b"fc9.bias", 1), "sorted"),
        (lambda h: h.replace(b"fc1.weight", b"fc1.bias", 1), "unique"),
        (lambda h: h.replace(b'"shape":[2]', b'"shape":[2.0]', 1), "integer"),
        (lambda h: h.replace(b'"shape":[2]', b'"shape":[-2]', 1), "dimension"),
        (lambda h: h.replace(b"fc1.bias", b"fc1 bias", 1), "name"),
        (lambda h: h.replace(b'{"tensors"', b'{"tensors":[],"tensors"', 1), "duplicate"),
        (lambda h: h[:-1], "JSON"),
        (lambda h: b'{"tensors":[]}', "at least one"),
        (lambda h: b"\xff" + h, "UTF-8"),
        (lambda h: b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    ],
)
def test_malformed_model_header_is_rejected(mutate, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        decode_model(_with_header(mutate(_header())), max_bytes=LIMIT)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (MODEL_BLOB[:-4], "truncated"),
        (MODEL_BLOB + bytes(4), "trailing"),
        (MODEL_BLOB[:11], "truncated"),
        (MODEL_BLOB[:8] + struct.pack("<I", 2**31) + MODEL_BLOB[12:], "does not fit"),
        (b"FTFV" + MODEL_BLOB[4:], "magic"),
        (MODEL_BLOB[:4] + b"\x09" + MODEL_BLOB[5:], "version 9"),
        (MODEL_BLOB[:5] + b"\x01" + MODEL_BLOB[6:], "reserved"),
    ],
)
def test_malformed_model_blob_is_rejected(blob: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        decode_model(blob, max_bytes=LIMIT)


def test_model_padding_must_be_zero() -> None:
    (length,) = struct.unpack_from("<I", MODEL_BLOB, 8)
    position = 12 + length
    if (12 + length) % 8 == 0:
        pytest.fail("the test model must need padding; change a tensor name")
    tampered = MODEL_BLOB[:position] + b"\x01" + MODEL_BLOB[position + 1 :]
    with pytest.raises(FormatError, match="padding"):
        decode_model(tampered, max_bytes=LIMIT)


def test_model_size_limit_is_enforced() -> None:
    with pytest.raises(FormatError, match="exceeds the limit"):
        decode_model(MODEL_BLOB, max_bytes=len(MODEL_BLOB) - 1)


@pytest.mark.parametrize(
    "tensors",
    [{"w": np.ones(3, dtype=np.float64)}, {"w": [1.0]}, {}, {"bad name": np.ones(1, np.float32)},
     {3: np.ones(1, np.float32)}],
)
def test_encoding_refuses_what_is_not_named_float32_tensors(tensors: dict) -> None:
    with pytest.raises(FormatError):
        encode_model(tensors)


def test_flatten_and_unflatten_are_inverse_and_follow_name_order() -> None:
    flat, layout = flatten_model(MODEL)
    assert flat.dtype == np.float32 and flat.size == layout.size == 24
    assert [name for name, _ in layout.tensors] == ["fc1.bias", "fc1.weight", "fc2.weight"]
    assert np.array_equal(flat[:2], MODEL["fc1.bias"])
    restored = unflatten_model(flat, layout)
    assert all(np.array_equal(restored[name], MODEL[name]) for name in MODEL)
    assert encode_model(restored) == MODEL_BLOB


def test_unflatten_refuses_a_vector_of_the_wrong_size() -> None:
    layout = ModelLayout((("w", (2, 2)),))
    with pytest.raises(FormatError, match="layout needs 4"):
        unflatten_model(np.ones(5, dtype=np.float32), layout)


# -- manifests ----------------------------------------------------------------------------


def test_manifest_round_trips_and_is_canonical_json() -> None:
    assert parse_manifest(MANIFEST_BLOB) == MANIFEST
    document = json.loads(MANIFEST_BLOB)
    assert MANIFEST_BLOB == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert document["schema"] == 1
    assert document["contract"] == "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def test_blob_cids_names_every_cid_a_manifest_holds_in_storing_order() -> None:
    checked = dataclasses.replace(MANIFEST, norm_claims=(1, 2, 3), samples=7, bit_claims=(4, 5, 6),
                                  proof_cids=(raw_cid("p1"), raw_cid("p2"), raw_cid("p3")))
    masked = dataclasses.replace(MANIFEST, masked_cid=raw_cid("m"), modulus_bits=32)
    assert checked.blob_cids == (*checked.share_cids, *checked.proof_cids)
    assert masked.blob_cids == (*masked.share_cids, raw_cid("m")) and MANIFEST.blob_cids == MANIFEST.share_cids
    # The class: whatever field holds a CID (today share_cids, masked_cid, proof_cids) is a blob the
    # client stores, and what counts or fetches a client's blobs reads blob_cids: a CID field it
    # leaves out (the demo's upload figure once left out the proofs) fails here.
    for manifest in (MANIFEST, checked, masked):
        held: list[str] = []
        for item in dataclasses.fields(manifest):
            value = getattr(manifest, item.name)
            if item.name.endswith("_cids"):
                held += value
            elif item.name.endswith("_cid") and value is not None:
                held.append(value)
        assert sorted(manifest.blob_cids) == sorted(held) and len(set(held)) == len(held)


def _mutated_manifest(path: tuple[str, ...], value: object) -> bytes:
    document = json.loads(MANIFEST_BLOB)
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("schema",), 2, "schema"),
        (("chain_id",), 0, "chain_id"),
        (("chain_id",), 2**53, "chain_id"),
        (("chain_id",), "1", "chain_id"),
        (("round",), True, "round"),
        (("contract",), "0x123", "contract"),
        (("client",), None, "client"),
        (("n",), 256, "n must"),
        (("t",), 1, "t must"),
        (("t",), 4, "t must"),
        (("vector_length",), 1, "vector_length"),
        (("quantization", "clip_norm"), -1.0, "clip_norm"),
        (("quantization", "clip_norm"), 10**400, "clip_norm must be finite"),
        (("quantization", "fractional_bits"), 50, "overflow"),
        (("quantization", "max_samples"), KeyError, "missing max_samples"),
        (("quantization", "extra"), 1, "unknown keys extra"),
        (("share_cids",), "bafy", "share_cids"),
        (("share_cids",), [raw_cid("a")], "exactly n = 3"),
        (("share_cids", 1), "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", r"share_cids\[1\]"),
        (("share_cids", 2), raw_cid("c").upper(), r"share_cids\[2\]"),
        (("share_cids", 0), "not a cid", r"share_cids\[0\]"),
        (("share_cids", 0), str(CID("base58btc", 1, "raw", multihash.digest(b"a", "sha2-256"))),
         "base32"),
        (("share_cids", 0), str(CID("base32", 1, "dag-cbor", multihash.digest(b"a", "sha2-256"))),
         "codec"),
        (("share_cids", 0), str(CID("base32", 1, "raw", multihash.digest(b"a", "sha2-512"))),
         "sha2-256"),
        (("round",), KeyError, "missing round"),
        (("surprise",), 1, "unknown keys surprise"),
    ],
)
def test_manifest_field_errors_name_the_field(path: tuple, value: object, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_manifest(_mutated_manifest(path, value))


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b'{"schema":1,"schema":1}', "duplicate"),
        (MANIFEST_BLOB.replace(b'"clip_norm":2.5', b'"clip_norm":NaN'), "NaN"),
        (MANIFEST_BLOB[:-1], "JSON"),
        (b"[]", "object"),
        (MANIFEST_BLOB.decode().encode("utf-16"), "UTF-8"),
        (b" " * (64 * 1024 + 1), "exceeds the limit"),
        (b"{" * 30_000, "nested deeper"),
    ],
)
def test_malformed_manifest_bytes_are_rejected(blob: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_manifest(blob)


def test_manifest_addresses_are_case_insensitive_and_stored_lowercase() -> None:
    upper = dataclasses.replace(MANIFEST, client="0x" + MANIFEST.client[2:].upper())
    assert upper == MANIFEST


# -- vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["field_vectors"], ids=lambda case: f"kind{case['kind']}")
def test_field_vector_encoding_matches_the_published_vectors(case: dict) -> None:
    values = np.array([int(v) for v in case["values"]], dtype=np.uint64)
    kind = VectorKind(case["kind"])
    assert encode_field_vector(values, kind=kind).hex() == case["encoded"]
    decoded = decode_field_vector(bytes.fromhex(case["encoded"]), kind=kind, max_bytes=LIMIT)
    assert decoded.tolist() == values.tolist()


@pytest.mark.parametrize("case", VECTORS["models"], ids=lambda case: case["description"])
def test_model_encoding_matches_the_published_vectors(case: dict) -> None:
    tensors = {
        entry["name"]: np.frombuffer(bytes.fromhex(entry["float32_hex"]), dtype="<f4")
        .astype(np.float32)
        .reshape(entry["shape"])
        for entry in case["tensors"]
    }
    assert encode_model(tensors).hex() == case["encoded"]
    decoded = decode_model(bytes.fromhex(case["encoded"]), max_bytes=LIMIT)
    assert all(np.array_equal(decoded[name], tensors[name]) for name in tensors)


@pytest.mark.parametrize("case", VECTORS["manifests"])
def test_manifest_encoding_matches_the_published_vectors(case: dict) -> None:
    fields = dict(case["fields"])
    manifest = Manifest(**{**fields, "quantization": QuantizationConfig(**fields["quantization"])})
    assert encode_manifest(manifest).decode() == case["encoded"]
    assert parse_manifest(case["encoded"].encode()) == manifest


# -- fuzzing: malformed input raises FormatError and nothing else -------------------------


def _decode_any(decoder: str, blob: bytes) -> None:
    if decoder == "vector":
        decode_field_vector(blob, kind=SHARE, max_bytes=LIMIT)
    elif decoder == "model":
        decode_model(blob, max_bytes=LIMIT)
    else:
        parse_manifest(blob)


VALID = {"vector": VECTOR_BLOB, "model": MODEL_BLOB, "manifest": MANIFEST_BLOB}


@st.composite
def mutated(draw: st.DrawFn, decoder: str) -> bytes:
    """A valid blob with a few bytes flipped, cut, inserted or deleted."""
    blob = bytearray(VALID[decoder])
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        position = draw(st.integers(0, max(len(blob) - 1, 0)))
        if action == "flip" and blob:
            blob[position] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del blob[position:]
        elif action == "insert":
            blob[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif blob:
            del blob[position]
    return bytes(blob)


@pytest.mark.parametrize("decoder", sorted(VALID))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fuzzed_input_raises_format_error_or_decodes(decoder: str, data: st.DataObject) -> None:
    blob = data.draw(st.one_of(st.binary(max_size=200), mutated(decoder)))
    try:
        _decode_any(decoder, blob)
    except FormatError:
        pass


# -- fuzzing: well-formed JSON carrying any value, numbers at and beyond every limit -------

#: Numbers a client may write in JSON: float and uint64 limits, and far beyond them.
EXTREME_NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**61 - 1, 2**63, 2**64 - 1, 2**64, 2**256, 10**4000,
                     1.7976931348623157e308, 2.2250738585072014e-308, 5e-324, -0.0]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | EXTREME_NUMBERS | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def manifest_documents(draw: st.DrawFn) -> bytes:
    """The valid manifest with one to four fields (quantization's included) set to any JSON value."""
    document = json.loads(MANIFEST_BLOB)
    paths = [(key,) for key in document] + [("quantization", key) for key in document["quantization"]]
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True)):
        parent = document if len(path) == 1 else document[path[0]]
        if isinstance(parent, dict):  # quantization itself may have been replaced already
            parent[path[-1]] = draw(st.one_of(EXTREME_NUMBERS, JSON_VALUES))
    return json.dumps(document).encode()


@settings(max_examples=2000, deadline=None)
@given(blob=manifest_documents())
def test_a_manifest_with_any_values_in_its_fields_raises_format_error_or_parses(blob: bytes) -> None:
    # The class behind a member-stopping crash: an absurd clip_norm or capacity made the
    # quantization check raise OverflowError while it wrote its own message.
    try:
        parse_manifest(blob)
    except FormatError:
        pass


@pytest.mark.parametrize("quantization", [
    {"clip_norm": 1.7976931348623157e308, "fractional_bits": 60, "max_clients": 2**40, "max_samples": 2**40},
    {"clip_norm": 1e300, "fractional_bits": 16, "max_clients": 1000, "max_samples": 10000},
    {"clip_norm": 10**400, "fractional_bits": 16, "max_clients": 1000, "max_samples": 10000},
    {"clip_norm": 5e-324, "fractional_bits": 60, "max_clients": 2**40, "max_samples": 2**40},
])
def test_a_manifest_with_absurd_quantization_is_a_format_error_naming_it(quantization: dict) -> None:
    document = json.loads(MANIFEST_BLOB)
    document["quantization"] = quantization
    with pytest.raises(FormatError, match="manifest quantization"):
        parse_manifest(json.dumps(document).encode())


@settings(max_examples=2000, deadline=None)
@given(length=st.sampled_from([1, 2, 2**32, 2**61, 2**63, 2**64 - 1]),
       values=st.lists(st.sampled_from([0, 1, P - 1, P, 2**63, 2**64 - 1]), max_size=4),
       tail=st.binary(max_size=16))
def test_a_field_vector_header_with_any_length_raises_format_error_or_decodes(length: int, values: list[int],
                                                                              tail: bytes) -> None:
    blob = struct.pack("<4sBBHQ", b"FTFV", 1, int(SHARE), 0, length) + struct.pack(f"<{len(values)}Q", *values) + tail
    try:
        decode_field_vector(blob, kind=SHARE, max_bytes=LIMIT)
    except FormatError:
        pass


@st.composite
def model_blobs_with_any_header(draw: st.DrawFn) -> bytes:
    """The valid model with one to three header values set to anything, re-framed correctly."""
    header = json.loads(MODEL_BLOB[12 : 12 + struct.unpack_from("<I", MODEL_BLOB, 8)[0]])
    entry = draw(st.sampled_from(header["tensors"]))
    for key in draw(st.lists(st.sampled_from(["name", "offset", "shape", "dim"]), min_size=1, max_size=3)):
        value = draw(st.one_of(EXTREME_NUMBERS, JSON_VALUES))
        if key == "dim" and isinstance(entry["shape"], list):
            entry["shape"] = [*entry["shape"], value][:9]
        elif key != "dim":
            entry[key] = value
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = draw(st.binary(max_size=64))
    return struct.pack("<4sB3sI", b"FTMD", 1, bytes(3), len(raw)) + raw + bytes(-(12 + len(raw)) % 8) + body


@settings(max_examples=1500, deadline=None)
@given(blob=model_blobs_with_any_header())
def test_a_model_header_with_any_values_raises_format_error_or_decodes(blob: bytes) -> None:
    try:
        decode_model(blob, max_bytes=LIMIT)
    except FormatError:
        pass


def test_a_shared_vector_holds_every_model_element_and_then_the_sample_count() -> None:
    assert shared_vector_length(MODEL) == 12 + 2 + 10 + 1
    assert field_vector_bytes(shared_vector_length(MODEL)) == len(encode_field_vector(
        np.zeros(25, dtype=np.uint64), kind=SHARE))


def test_a_manifest_passes_the_round_terms_only_for_its_own_client() -> None:
    terms = RoundTerms(MANIFEST.chain_id, MANIFEST.contract.upper().replace("0X", "0x"), MANIFEST.round,
                       n=MANIFEST.n, t=MANIFEST.t, vector_length=MANIFEST.vector_length,
                       quantization=MANIFEST.quantization)
    check_manifest(MANIFEST, client=MANIFEST.client, terms=terms)
    with pytest.raises(FormatError, match="manifest client does not match"):
        check_manifest(MANIFEST, client="0x" + "ee" * 20, terms=terms)
    with pytest.raises(FormatError, match="manifest round does not match"):
        check_manifest(MANIFEST, client=MANIFEST.client, terms=dataclasses.replace(terms, round=terms.round + 1))


CLAIMED = dataclasses.replace(MANIFEST, norm_claims=(5, 0, P - 1), proof_cids=MANIFEST.share_cids[::-1],
                              bit_claims=(0, 7, P - 2))


def test_a_manifests_norm_claims_round_trip_as_decimal_strings_and_are_absent_when_empty() -> None:
    blob = encode_manifest(CLAIMED)
    assert b'"norm_claims":["5","0","2305843009213693950"]' in blob
    assert parse_manifest(blob) == CLAIMED
    assert b"norm_claims" not in MANIFEST_BLOB and parse_manifest(MANIFEST_BLOB).norm_claims == ()


@pytest.mark.parametrize(
    ("claims", "reason"),
    [(["5", "0"], "exactly n = 3"), ([], "non-empty"), ([5, 0, 1], "decimal strings"), (["05", "0", "1"], "leading"),
     (["-5", "0", "1"], "sign"), (["5", "0", str(P)], "norm_claims\\[2\\]"), (["5", "0", " 1"], "decimal"),
     ("5,0,1", "non-empty list"), (["5", "0", "1" * 40], "decimal")],
)
def test_malformed_norm_claims_are_a_format_error_naming_them(claims: object, reason: str) -> None:
    document = json.loads(encode_manifest(CLAIMED))
    document["norm_claims"] = claims
    blob = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(FormatError, match=reason):
        parse_manifest(blob)


def test_a_manifests_wrap_around_proof_round_trips_and_comes_only_with_its_norm_claims() -> None:
    blob = encode_manifest(CLAIMED)
    assert b'"bit_claims":["0","7","2305843009213693949"]' in blob and b'"proof_cids":["' in blob
    assert parse_manifest(blob) == CLAIMED
    for without in (dict(proof_cids=()), dict(bit_claims=()), dict(norm_claims=())):
        with pytest.raises(FormatError, match="come with norm_claims"):
            dataclasses.replace(CLAIMED, **without)
    with pytest.raises(FormatError, match="come with norm_claims"):
        dataclasses.replace(MANIFEST, proof_cids=MANIFEST.share_cids)
    with pytest.raises(FormatError, match="bit_claims must list exactly n = 3"):
        dataclasses.replace(CLAIMED, bit_claims=(1, 2))
    with pytest.raises(FormatError, match="proof_cids must list exactly n = 3"):
        dataclasses.replace(CLAIMED, proof_cids=MANIFEST.share_cids[:2])
    with pytest.raises(FormatError, match="proof_cids\\[1\\] \\(member 2\\) is not a valid CID"):
        dataclasses.replace(CLAIMED, proof_cids=(MANIFEST.share_cids[0], "not-a-cid", MANIFEST.share_cids[2]))


@pytest.mark.parametrize(("change", "reason"), [
    (lambda d: d.pop("proof_cids"), "missing proof_cids"),
    (lambda d: d.update(proof_cids="bafy"), "proof_cids must be a non-empty list"),
    (lambda d: d.update(proof_cids=[]), "proof_cids must be a non-empty list"),
    (lambda d: d.pop("bit_claims"), "missing bit_claims"),
    (lambda d: d.update(bit_claims=["1", "2", "03"]), "bit_claims must be decimal strings"),
    (lambda d: d.update(bit_claims=["1", "2", str(P)]), "bit_claims\\[2\\]"),
])
def test_a_malformed_wrap_around_proof_in_a_manifest_is_a_format_error_naming_it(change, reason: str) -> None:
    document = json.loads(encode_manifest(CLAIMED))
    change(document)
    with pytest.raises(FormatError, match=reason):
        parse_manifest(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


def test_a_manifest_must_carry_norm_claims_exactly_when_the_round_checks_norms() -> None:
    terms = RoundTerms(MANIFEST.chain_id, MANIFEST.contract, MANIFEST.round, n=MANIFEST.n, t=MANIFEST.t,
                       vector_length=MANIFEST.vector_length, quantization=MANIFEST.quantization, norm_claims=True)
    check_manifest(CLAIMED, client=MANIFEST.client, terms=terms)
    with pytest.raises(FormatError, match="checks norms, the manifest claims none"):
        check_manifest(MANIFEST, client=MANIFEST.client, terms=terms)
    with pytest.raises(FormatError, match="this round checks no norms"):
        check_manifest(CLAIMED, client=MANIFEST.client, terms=dataclasses.replace(terms, norm_claims=False))


WEIGHTED = dataclasses.replace(MANIFEST, samples=37)


def test_a_manifests_sample_count_round_trips_as_a_json_integer_and_is_absent_when_the_client_weights_itself() -> None:
    blob = encode_manifest(WEIGHTED)
    assert b'"samples":37' in blob and parse_manifest(blob) == WEIGHTED
    assert b'"samples"' not in MANIFEST_BLOB and parse_manifest(MANIFEST_BLOB).samples is None


@pytest.mark.parametrize(
    ("samples", "reason"),
    [(0, "samples must be in"), (-3, "samples must be in"), (MANIFEST.quantization.max_samples + 1, "samples must be in"),
     (2.0, "samples must be an integer"), ("37", "samples must be an integer"), (True, "samples must be an integer"),
     (None, "samples must be an integer")],
)
def test_a_sample_count_outside_one_to_max_samples_or_not_an_integer_is_a_format_error(samples: object,
                                                                                      reason: str) -> None:
    """The members multiply the client's share by it: it must be a count the federation allows."""
    document = json.loads(encode_manifest(WEIGHTED))
    document["samples"] = samples
    blob = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(FormatError, match=reason):
        parse_manifest(blob)


def test_a_masked_manifest_states_no_sample_count() -> None:
    with pytest.raises(FormatError, match="samples belong to the Shamir mode"):
        dataclasses.replace(MANIFEST, masked_cid=MANIFEST.share_cids[0], modulus_bits=32, samples=37)


def test_a_manifest_must_state_its_sample_count_exactly_when_the_members_weight_updates() -> None:
    terms = RoundTerms(MANIFEST.chain_id, MANIFEST.contract, MANIFEST.round, n=MANIFEST.n, t=MANIFEST.t,
                       vector_length=MANIFEST.vector_length, quantization=MANIFEST.quantization, samples=True)
    check_manifest(WEIGHTED, client=MANIFEST.client, terms=terms)
    with pytest.raises(FormatError, match="members weight updates, the manifest states no sample count"):
        check_manifest(MANIFEST, client=MANIFEST.client, terms=terms)
    with pytest.raises(FormatError, match="clients weight their own updates"):
        check_manifest(WEIGHTED, client=MANIFEST.client, terms=dataclasses.replace(terms, samples=False))


# -- federated metrics in a model's header -------------------------------------------------


def test_a_models_metrics_round_trip_and_change_its_bytes_but_not_its_tensors() -> None:
    blob = encode_model(MODEL, metrics={"loss": 0.31, "accuracy": 1})
    assert decode_model_metrics(blob, max_bytes=LIMIT) == {"accuracy": 1.0, "loss": 0.31}
    assert decode_model_metrics(MODEL_BLOB, max_bytes=LIMIT) == {}
    assert blob != MODEL_BLOB
    for name, value in decode_model(blob, max_bytes=LIMIT).items():
        assert np.array_equal(value, MODEL[name])
    assert encode_model(MODEL, metrics={"accuracy": 1.0, "loss": 0.31}) == blob  # insertion order does not matter


@pytest.mark.parametrize(
    ("metrics", "reason"),
    [({"loss": float("nan")}, "finite"), ({"loss": float("inf")}, "finite"), ({"bad name": 1.0}, "metric name"),
     ({"loss": True}, "finite number"), ({}, "non-empty")],
)
def test_metrics_a_header_cannot_carry_are_refused_when_encoding(metrics: dict, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        encode_model(MODEL, metrics=metrics)


@pytest.mark.parametrize(
    ("metrics_json", "reason"),
    [(b'{"loss":1}', "canonical"), (b'{"loss":0.10}', "canonical"), (b'{"loss":"0.1"}', "finite number"),
     (b'{"loss":NaN}', "JSON"), (b'{}', "non-empty"), (b'[]', "non-empty"), (b'{"loss":1e999}', "finite")],
)
def test_a_header_whose_metrics_are_not_canonical_finite_numbers_is_rejected(metrics_json: bytes,
                                                                             reason: str) -> None:
    header = b'{"metrics":' + metrics_json + b"," + _header()[1:]
    with pytest.raises(FormatError, match=reason):
        decode_model(_with_header(header), max_bytes=LIMIT)


@st.composite
def model_blobs_with_any_metrics(draw: st.DrawFn) -> bytes:
    """The valid model with a "metrics" member of any JSON value, re-framed correctly."""
    header = json.loads(_header())
    header["metrics"] = draw(st.one_of(EXTREME_NUMBERS, JSON_VALUES, st.dictionaries(
        st.text(max_size=8), st.one_of(EXTREME_NUMBERS, JSON_VALUES), max_size=3)))
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return _with_header(raw)


@settings(max_examples=800, deadline=None)
@given(blob=model_blobs_with_any_metrics())
def test_a_model_header_with_any_metrics_raises_format_error_or_decodes_to_finite_numbers(blob: bytes) -> None:
    try:
        metrics = decode_model_metrics(blob, max_bytes=LIMIT)
    except FormatError:
        return
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert decode_model(blob, max_bytes=LIMIT).keys() == MODEL.keys()


def test_a_shared_vector_with_metrics_holds_them_after_the_sample_count() -> None:
    assert shared_vector_length(MODEL, 2) == shared_vector_length(MODEL) + 2
