"""The deployment's aggregation mode on a real anvil: fixed at construction, read back by the
views, every bad combination refused with its arguments, rounds unchanged.

Accounts (see tests/fixtures/anvil.py): 0 operator, 1-5 committee (t = 3), 6-15 clients.
"""

from __future__ import annotations

import hashlib

import pytest

from fedtss.chain import Aggregation, RoundState, dev_sealing_keypair
from fedtss.cid import RAW, cid_from_parts
from tests.contracts.helpers import reverts_exactly as reverts
from tests.fixtures.anvil import default_rounds_config

#: Config struct positions of (mode, modulusBits, clientKeys), after the eight Shamir-era fields.
MODE, BITS, KEYS = 8, 9, 10


def client_keys(accounts, count: int = 10) -> tuple[bytes, ...]:
    """Distinct non-zero X25519 public keys for clients 6..6+count-1 (any valid key will do here)."""
    return tuple(dev_sealing_keypair(a.address)[1] for a in accounts[6 : 6 + count])


def _raw_deploy(chain, rounds_artifact, arg: list) -> None:
    """Deploy with a hand-made ``Config`` struct (what RoundsConfig refuses to express)."""
    from fedtss.chain.contract import _RevertDecoder, _send

    factory = chain.w3.eth.contract(abi=rounds_artifact.abi, bytecode=rounds_artifact.bytecode)
    _send(chain.w3, chain.accounts[0], factory.constructor(tuple(arg)), _RevertDecoder(rounds_artifact.abi))


def _masked_arg(chain, bits: int = 48, keys: tuple[bytes, ...] | None = None) -> list:
    config = default_rounds_config(chain.accounts)
    arg = list(config.constructor_arg())
    arg[MODE], arg[BITS], arg[KEYS] = 1, bits, list(client_keys(chain.accounts) if keys is None else keys)
    return arg


def test_a_default_deployment_is_in_the_shamir_mode_with_no_client_keys(deploy):
    rounds = deploy()
    assert rounds.aggregation() == Aggregation("shamir", 0)
    assert rounds.client_keys() == []


@pytest.mark.parametrize("bits", [32, 40, 48, 56, 64])
def test_a_masked_deployment_returns_its_ring_and_the_client_keys_in_allowlist_order(chain, deploy, bits):
    keys = client_keys(chain.accounts)
    rounds = deploy(aggregation=Aggregation("masked", bits), client_keys=keys)
    assert rounds.aggregation() == Aggregation("masked", bits)
    assert rounds.client_keys() == list(keys)
    assert rounds.clients() == [a.address for a in chain.accounts[6:16]]


def test_a_masked_deployment_runs_rounds_exactly_as_the_shamir_one(chain, deploy):
    rounds = deploy(aggregation=Aggregation("masked", 48), client_keys=client_keys(chain.accounts), target_clients=3)
    operator, clients = chain.accounts[0], chain.accounts[6:9]
    rounds.start_training(operator, cid_from_parts(RAW, hashlib.sha256(b"m0").digest()), 1)
    for client in clients:
        rounds.submit_update(client, 1, cid_from_parts(RAW, hashlib.sha256(client.address.encode()).digest()))
    assert rounds.state(1) == RoundState.Aggregating


def test_a_masked_deployment_without_one_key_per_client_reverts_with_both_counts(chain, rounds_artifact):
    with reverts("ConfigInvalidClientKeys", keys=9, clients=10):
        _raw_deploy(chain, rounds_artifact, _masked_arg(chain, keys=client_keys(chain.accounts, 9)))
    with reverts("ConfigInvalidClientKeys", keys=0, clients=10):
        _raw_deploy(chain, rounds_artifact, _masked_arg(chain, keys=()))


def test_a_zero_client_key_reverts_naming_the_client(chain, rounds_artifact):
    keys = list(client_keys(chain.accounts))
    keys[3] = bytes(32)
    with reverts("ConfigInvalidClientKey", client=chain.accounts[9].address):
        _raw_deploy(chain, rounds_artifact, _masked_arg(chain, keys=tuple(keys)))


@pytest.mark.parametrize("bits", [0, 8, 24, 31, 33, 50, 63, 72, 255])
def test_a_masked_ring_other_than_32_to_64_whole_bytes_reverts_with_mode_and_bits(chain, rounds_artifact, bits):
    with reverts("ConfigInvalidModulusBits", mode="masked", modulusBits=bits):
        _raw_deploy(chain, rounds_artifact, _masked_arg(chain, bits=bits))


def test_a_ring_in_the_shamir_mode_reverts_with_mode_and_bits(chain, rounds_artifact):
    arg = list(default_rounds_config(chain.accounts).constructor_arg())
    arg[BITS] = 48
    with reverts("ConfigInvalidModulusBits", mode="shamir", modulusBits=48):
        _raw_deploy(chain, rounds_artifact, arg)


def test_client_keys_in_the_shamir_mode_revert_with_both_counts(chain, deploy):
    with reverts("ConfigInvalidClientKeys", keys=10, clients=10):
        deploy(client_keys=client_keys(chain.accounts))


def test_an_unknown_mode_is_refused_by_the_abi_decoder(chain, rounds_artifact):
    from fedtss.errors import ChainError

    arg = _masked_arg(chain)
    arg[MODE] = 2
    with pytest.raises(ChainError):
        _raw_deploy(chain, rounds_artifact, arg)
