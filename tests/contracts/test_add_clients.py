"""FedTSSRounds.addClients on a real anvil: an allowlist larger than one transaction holds.

Accounts (see tests/fixtures/anvil.py): 0 operator, 1-5 committee, 6-15 clients, 16+ outsiders.
"""

from __future__ import annotations

import hashlib

import pytest

import fedtss.chain.contract as contract_module
from fedtss.chain import Aggregation, ClientsAdded, RoundsContract, deploy_rounds, dev_sealing_keypair, events_of
from fedtss.cid import RAW, cid_from_parts
from fedtss.errors import ChainError, ChainUnavailable
from tests.contracts.helpers import reverts_exactly as reverts
from tests.fixtures.anvil import default_rounds_config

ZERO = "0x" + "00" * 20


def cid(label: str) -> str:
    return cid_from_parts(RAW, hashlib.sha256(label.encode()).digest())


def key_of(account) -> bytes:
    return dev_sealing_keypair(account.address)[1]


def test_clients_added_before_training_are_allowlisted_in_order_and_can_submit(chain, deploy):
    rounds = deploy(target_clients=13)
    newcomers = chain.accounts[16:19]
    receipt = rounds.add_clients(chain.accounts[0], [a.address for a in newcomers])
    (added,) = events_of(rounds.events(receipt), ClientsAdded)
    assert (added.added, added.allowlisted) == (3, 13)
    assert rounds.clients() == [a.address for a in (*chain.accounts[6:16], *newcomers)]
    rounds.start_training(chain.accounts[0], cid("model"), 1)
    rounds.submit_update(newcomers[2], 1, cid("update"))
    assert rounds.submitters(1) == [newcomers[2].address]


def test_adding_clients_once_a_round_opened_reverts(chain, deploy):
    rounds = deploy()
    rounds.start_training(chain.accounts[0], cid("model"), 1)
    with reverts("ConfigAllowlistClosed", round=1):
        rounds.add_clients(chain.accounts[0], [chain.accounts[16].address])


def test_only_the_operator_adds_clients(chain, deploy):
    rounds = deploy()
    outsider = chain.accounts[16]
    with reverts("AccessNotOperator", account=outsider.address):
        rounds.add_clients(outsider, [outsider.address])


def test_adding_no_client_a_zero_or_repeated_one_or_a_key_in_the_shamir_mode_reverts(chain, deploy):
    rounds, operator = deploy(), chain.accounts[0]
    newcomer, allowlisted = chain.accounts[16].address, chain.accounts[6].address
    with reverts("ConfigNoClientsToAdd"):
        rounds.add_clients(operator, [])
    with reverts("ConfigZeroAddress"):
        rounds.add_clients(operator, [newcomer, ZERO])
    with reverts("ConfigDuplicateClient", account=allowlisted):
        rounds.add_clients(operator, [allowlisted])
    with reverts("ConfigDuplicateClient", account=newcomer):
        rounds.add_clients(operator, [newcomer, newcomer])
    with reverts("ConfigInvalidClientKeys", keys=1, clients=1):
        rounds.add_clients(operator, [newcomer], [key_of(chain.accounts[16])])
    assert len(rounds.clients()) == 10  # every refusal left the allowlist as it was


def test_the_masked_mode_takes_one_non_zero_key_per_added_client(chain, deploy):
    keys = tuple(key_of(a) for a in chain.accounts[6:16])
    rounds, operator = deploy(aggregation=Aggregation("masked", 48), client_keys=keys), chain.accounts[0]
    newcomers = chain.accounts[16:18]
    with reverts("ConfigInvalidClientKeys", keys=0, clients=2):
        rounds.add_clients(operator, [a.address for a in newcomers])
    with reverts("ConfigInvalidClientKey", client=newcomers[1].address):
        rounds.add_clients(operator, [a.address for a in newcomers], [key_of(newcomers[0]), bytes(32)])
    rounds.add_clients(operator, [a.address for a in newcomers], [key_of(a) for a in newcomers])
    assert rounds.client_keys() == [*keys, *(key_of(a) for a in newcomers)]


@pytest.mark.parametrize("min_clients", [3, 6])
def test_deploy_rounds_allowlists_past_one_batch_with_add_clients_in_order(chain, rounds_artifact, monkeypatch,
                                                                          min_clients):
    # The constructor takes one batch whatever min_clients is: startTraining checks min_clients.
    monkeypatch.setattr(contract_module, "ALLOWLIST_BATCH", 4)
    config = default_rounds_config(chain.accounts)
    config = type(config)(**{**config.__dict__, "min_clients": min_clients})
    address, _ = deploy_rounds(chain.w3, chain.accounts[0], rounds_artifact, config)
    rounds = RoundsContract(chain.w3, address, rounds_artifact.abi)
    assert rounds.clients() == list(config.clients)
    first = 4
    additions = events_of(rounds.get_events(0), ClientsAdded)
    expected = [(len(config.clients[s:s + 4]), min(s + 4, 10)) for s in range(first, 10, 4)]
    assert [(e.added, e.allowlisted) for e in additions] == expected


def test_deploy_rounds_whose_later_batch_fails_names_the_contract_and_how_many_clients_it_holds(
        chain, rounds_artifact, monkeypatch):
    monkeypatch.setattr(contract_module, "ALLOWLIST_BATCH", 4)
    original = RoundsContract.add_clients
    calls = []

    def second_batch_fails(self, account, clients, keys=()):
        calls.append(len(clients))
        if len(calls) == 2:
            raise ChainUnavailable("no Ethereum JSON-RPC node answers at http://127.0.0.1:1")
        return original(self, account, clients, keys)

    monkeypatch.setattr(RoundsContract, "add_clients", second_batch_fails)
    config = default_rounds_config(chain.accounts)  # 10 clients: 4 in the constructor, then 4 and 2
    with pytest.raises(ChainError) as failed:
        deploy_rounds(chain.w3, chain.accounts[0], rounds_artifact, config)
    assert not isinstance(failed.value, ChainUnavailable)  # deploying again is the operator's call, not a retry's
    message = str(failed.value)
    address = message.split("deployed at ")[1].split(",")[0]
    assert "only the first 8 of 10 clients" in message and "addClients" in message
    assert RoundsContract(chain.w3, address, rounds_artifact.abi).clients() == list(config.clients[:8])
