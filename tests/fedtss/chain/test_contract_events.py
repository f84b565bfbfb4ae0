"""The contract's events as typed values: ClientSet, decode_event for every event, and the
event classes against the compiled ABI (so a renamed or added event argument fails here)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedtss.chain import (
    AggregateShareSubmitted,
    ChainEvent,
    ClientsAdded,
    ChecksSubmitted,
    ClientSet,
    CollectionClosed,
    ComplaintsSubmitted,
    ModelProposed,
    RoundEvent,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundState,
    ThresholdReached,
    TrainingCompleted,
    TrainingStarted,
    UpdateSubmitted,
    events_of,
)
from fedtss.chain.contract_events import EVENT_TYPES, cid_or_none, decode_event, event_arguments
from fedtss.cid import DAG_PB, RAW, cid_from_parts, cid_to_parts

MODEL = hashlib.sha256(b"model").digest()
SHARE = hashlib.sha256(b"share").digest()
MEMBER = "0x" + "Ab" * 20
CLIENT = "0x" + "cD" * 20
WHERE = {"block_number": 17, "tx_hash": "0x" + "ee" * 32, "log_index": 3}

# -------------------------------------------------------------------------- ClientSet


def test_client_set_of_indices_sets_one_bit_per_index():
    assert ClientSet.of([0, 2, 5]).bitmap == 0b100101
    assert ClientSet.of([5, 0, 2, 2]) == ClientSet.of([0, 2, 5])  # order and repeats do not matter
    assert ClientSet.of([]) == ClientSet(0)
    assert ClientSet.of(range(10)).bitmap == (1 << 10) - 1


def test_client_set_iterates_its_indices_ascending_and_its_length_counts_them():
    clients = ClientSet(0b101001)
    assert list(clients) == [0, 3, 5]
    assert len(clients) == 3
    assert list(ClientSet(0)) == [] and len(ClientSet(0)) == 0
    assert list(ClientSet.of([4095, 255, 0])) == [0, 255, 4095]  # up to the contract's 4096 clients


def test_client_set_contains_exactly_its_indices():
    clients = ClientSet.of([1, 4])
    assert 1 in clients and 4 in clients
    assert 0 not in clients and 2 not in clients and 5 not in clients
    assert -1 not in clients  # a negative index is no bit, not an error
    assert "1" not in clients and None not in clients  # nor is a non-integer


def test_client_set_prints_as_its_indices_in_braces():
    assert str(ClientSet.of([0, 2, 9])) == "{0,2,9}"
    assert str(ClientSet(0)) == "{}"


@pytest.mark.parametrize("bitmap", [-1, -(1 << 10), True, False, 1.0, "3", None], ids=repr)
def test_client_set_refuses_a_bitmap_that_is_negative_a_bool_or_not_an_int(bitmap):
    with pytest.raises(ValueError, match="non-negative int bitmap"):
        ClientSet(bitmap)


def test_client_set_of_refuses_a_negative_index():
    with pytest.raises(ValueError, match="0-based submission indices"):
        ClientSet.of([0, -1])


def test_client_set_is_never_equal_to_the_int_bitmap_it_holds():
    assert ClientSet(5) != 5
    assert 5 != ClientSet(5)
    assert ClientSet(0) != 0
    assert ClientSet(5) == ClientSet.of([0, 2])
    assert {ClientSet(5): "one key"}[ClientSet.of([0, 2])] == "one key"  # hashable by value


def test_client_set_is_immutable():
    clients = ClientSet(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        clients.bitmap = 3  # type: ignore[misc]


def test_client_set_words_are_256_bit_words_least_significant_first_with_no_trailing_zero_word():
    assert ClientSet.of([0, 3]).words() == [0b1001]
    assert ClientSet.of([255]).words() == [1 << 255]
    assert ClientSet.of([256]).words() == [0, 1]
    assert ClientSet.of([1, 600]).words() == [0b10, 0, 1 << (600 - 512)]
    assert ClientSet(0).words() == []


@given(st.integers(min_value=0, max_value=(1 << 4096) - 1))
def test_a_client_set_rebuilt_from_its_words_is_the_same_set_and_its_words_are_canonical(bitmap):
    clients = ClientSet(bitmap)
    words = clients.words()
    assert ClientSet.from_words(words) == clients
    assert all(0 <= word < 1 << 256 for word in words)
    assert not words or words[-1] != 0  # one set, one encoding: the contract counts shares by it
    assert ClientSet.from_words([*words, 0]) == clients  # a padded form decodes, but is not what words() gives


@pytest.mark.parametrize("word", [-1, 1 << 256])
def test_client_set_from_words_refuses_a_word_outside_uint256(word):
    with pytest.raises(ValueError, match="uint256"):
        ClientSet.from_words([1, word])


@given(st.integers(min_value=0, max_value=(1 << 256) - 1))
def test_a_client_set_rebuilt_from_its_indices_is_the_same_set(bitmap):
    clients = ClientSet(bitmap)
    assert ClientSet.of(iter(clients)) == clients
    assert len(clients) == len(list(clients))


@given(st.frozensets(st.integers(min_value=0, max_value=4095)))
def test_a_client_set_of_indices_holds_exactly_those_indices_in_order(indices):
    clients = ClientSet.of(indices)
    assert list(clients) == sorted(indices)
    assert len(clients) == len(indices)
    assert all(i in clients for i in indices)


# ------------------------------------------------------------------------ decode_event

#: For every Solidity event: its ABI-decoded arguments (Solidity names) and the typed event.
DECODED = {
    "TrainingStarted": (
        {"firstRound": 4, "rounds": 2},
        TrainingStarted(first_round=4, rounds=2, **WHERE),
    ),
    "RoundOpened": (
        {"round": 4, "modelCodec": DAG_PB, "modelDigest": MODEL, "collectionDeadline": 1_000},
        RoundOpened(round=4, model_cid=cid_from_parts(DAG_PB, MODEL), collection_deadline=1_000, **WHERE),
    ),
    "UpdateSubmitted": (
        {"round": 4, "client": CLIENT, "index": 7, "codec": RAW, "digest": MODEL},
        UpdateSubmitted(round=4, client=CLIENT, index=7, manifest_cid=cid_from_parts(RAW, MODEL), **WHERE),
    ),
    "ClientsAdded": (
        {"added": 250, "allowlisted": 500},
        ClientsAdded(added=250, allowlisted=500, **WHERE),
    ),
    "CollectionClosed": (
        {"round": 4, "clients": 9, "aggregationDeadline": 2_000},
        CollectionClosed(round=4, clients=9, aggregation_deadline=2_000, **WHERE),
    ),
    "AggregateShareSubmitted": (
        {"round": 4, "member": MEMBER, "memberIndex": 2, "codec": RAW, "digest": SHARE, "includedClients": [0b1011]},
        AggregateShareSubmitted(round=4, member=MEMBER, member_index=2, share_cid=cid_from_parts(RAW, SHARE),
                                included_clients=ClientSet.of([0, 1, 3]), **WHERE),
    ),
    "ChecksSubmitted": (
        {"round": 4, "member": MEMBER, "memberIndex": 2, "checks": bytes(range(32))},
        ChecksSubmitted(round=4, member=MEMBER, member_index=2, checks=bytes(range(32)), **WHERE),
    ),
    "ComplaintsSubmitted": (
        {"round": 4, "member": MEMBER, "memberIndex": 2, "clientIndices": [1, 5], "evidence": [MODEL, SHARE * 3]},
        ComplaintsSubmitted(round=4, member=MEMBER, member_index=2, client_indices=(1, 5), evidence=(MODEL, SHARE * 3),
                            **WHERE),
    ),
    "ThresholdReached": (
        {"round": 4, "includedClients": [0b1011], "proposalDeadline": 3_000},
        ThresholdReached(round=4, included_clients=ClientSet.of([0, 1, 3]), proposal_deadline=3_000, **WHERE),
    ),
    "ModelProposed": (
        {"round": 4, "member": MEMBER, "codec": DAG_PB, "digest": MODEL},
        ModelProposed(round=4, member=MEMBER, model_cid=cid_from_parts(DAG_PB, MODEL), **WHERE),
    ),
    "RoundFinalized": (
        {"round": 4, "codec": DAG_PB, "digest": MODEL},
        RoundFinalized(round=4, model_cid=cid_from_parts(DAG_PB, MODEL), **WHERE),
    ),
    "TrainingCompleted": (
        {"lastRound": 5, "codec": RAW, "digest": MODEL},
        TrainingCompleted(last_round=5, model_cid=cid_from_parts(RAW, MODEL), **WHERE),
    ),
    "RoundFailed": (
        {"round": 4, "stateAtFailure": 2},
        RoundFailed(round=4, state_at_failure=RoundState.Aggregating, **WHERE),
    ),
}


@pytest.mark.parametrize("name", sorted(DECODED))
def test_decode_event_gives_the_typed_event_of_that_name_with_where_it_happened(name):
    args, expected = DECODED[name]
    event = decode_event(name, args, **WHERE)
    assert event == expected
    assert type(event) is EVENT_TYPES[name]
    assert event.name == name
    assert (event.block_number, event.tx_hash, event.log_index) == (17, "0x" + "ee" * 32, 3)


def test_decode_event_joins_a_codec_and_digest_into_one_cid_string():
    opened = decode_event("RoundOpened", DECODED["RoundOpened"][0], **WHERE)
    assert isinstance(opened.model_cid, str) and opened.model_cid.startswith("b")
    assert cid_to_parts(opened.model_cid) == (DAG_PB, MODEL)
    update = decode_event("UpdateSubmitted", DECODED["UpdateSubmitted"][0], **WHERE)
    assert cid_to_parts(update.manifest_cid) == (RAW, MODEL)


def test_decode_event_turns_included_clients_words_into_a_client_set():
    for name in ("AggregateShareSubmitted", "ThresholdReached"):
        event = decode_event(name, DECODED[name][0], **WHERE)
        assert isinstance(event.included_clients, ClientSet)
        assert event.included_clients != 0b1011  # a bitmap compared by mistake is unequal
        assert list(event.included_clients) == [0, 1, 3]


@pytest.mark.parametrize("state", list(RoundState), ids=str)
def test_decode_event_turns_the_state_at_failure_into_a_round_state(state):
    failed = decode_event("RoundFailed", {"round": 1, "stateAtFailure": int(state)}, **WHERE)
    assert type(failed.state_at_failure) is RoundState
    assert failed.state_at_failure is state


def test_round_number_is_the_round_and_for_training_events_the_first_or_last_round():
    numbers = {name: decode_event(name, args, **WHERE).round_number for name, (args, _) in DECODED.items()}
    assert numbers.pop("TrainingStarted") == 4  # firstRound
    assert numbers.pop("TrainingCompleted") == 5  # lastRound
    assert numbers.pop("ClientsAdded") is None  # before any round
    assert set(numbers.values()) == {4}


def test_decode_event_of_a_name_the_contract_does_not_emit_is_a_key_error():
    with pytest.raises(KeyError):
        decode_event("RoundReopened", {"round": 1}, **WHERE)


def test_events_are_frozen():
    event = DECODED["RoundFinalized"][1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.round = 5  # type: ignore[misc]


def test_events_of_keeps_the_events_of_one_class_in_the_order_given():
    closed = DECODED["CollectionClosed"][1]
    opened = DECODED["RoundOpened"][1]
    later = dataclasses.replace(opened, round=5, log_index=9)
    assert events_of([opened, closed, later], RoundOpened) == [opened, later]
    assert events_of([opened, closed, later], RoundEvent) == [opened, closed, later]
    assert events_of([opened, closed], ThresholdReached) == []


# ----------------------------------------------------------------- against the ABI


def _abi_events(artifact) -> dict[str, dict]:
    return {item["name"]: item for item in artifact.abi if item["type"] == "event"}


def test_event_types_cover_exactly_the_events_of_the_compiled_contract(rounds_artifact):
    assert set(EVENT_TYPES) == set(_abi_events(rounds_artifact))
    assert all(issubclass(cls, ChainEvent) and cls.__name__ == name for name, cls in EVENT_TYPES.items())


def test_every_event_is_decoded_from_exactly_the_argument_names_the_abi_declares(rounds_artifact):
    for name, item in _abi_events(rounds_artifact).items():
        args, _ = DECODED[name]
        assert set(args) == {i["name"] for i in item["inputs"]}, name


def test_round_events_are_exactly_the_abi_events_whose_first_indexed_argument_is_round(rounds_artifact):
    """get_round_events filters on that topic: a RoundEvent without it would never be found."""
    indexed_by_round = {name for name, item in _abi_events(rounds_artifact).items()
                        if next((i["name"] for i in item["inputs"] if i["indexed"]), None) == "round"}
    assert {name for name, cls in EVENT_TYPES.items() if issubclass(cls, RoundEvent)} == indexed_by_round


@pytest.mark.parametrize("name", sorted(DECODED))
def test_event_arguments_give_back_what_the_contract_emitted_in_the_abi_order(name, rounds_artifact):
    args, event = DECODED[name]
    shown = event_arguments(event)
    assert shown == args
    (abi,) = [item for item in rounds_artifact.abi if item["type"] == "event" and item["name"] == name]
    assert list(shown) == [i["name"] for i in abi["inputs"]]
    assert decode_event(name, shown, **WHERE) == event


def test_cid_or_none_joins_a_valid_pair_and_gives_none_for_any_other_calldata():
    assert cid_or_none(RAW, MODEL) == cid_from_parts(RAW, MODEL)
    for codec, digest in [(0x12, MODEL), (RAW, b"\x01" * 31), (RAW, b"")]:
        assert cid_or_none(codec, digest) is None
