"""Launcher pieces: the spec's checks, the generated configs, and what a run leaves on disk."""

from __future__ import annotations

import stat
import tomllib

import pytest
from rich.console import Console


from agents.config import load_node_config, parse_node_config
from agents.learning import DEFAULT_TASK, load_task
from fedtss.errors import ConfigError
from fedtss.chain import Aggregation, dev_sealing_keypair, load_config
from fedtss.chain import ModelTerms, load_model_terms
from fedtss.chain.devnode import dev_accounts
from fedtss.chain.keys import load_masking_key

from orchestration import launcher
from orchestration.launcher import FederationSpec, LocalFederation, _deployment_toml, _toml, auto_clients_per_process
from orchestration.report import render_table
from orchestration.tracker import RoundTracker


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "../escape"}, "name"),
        ({"name": ""}, "name"),
        ({"threshold": 6}, "threshold"),
        ({"threshold": 1}, "threshold"),
        ({"committee": 1, "threshold": 1}, "committee"),
        ({"clients": 1}, "clients"),
        ({"ipfs_hosts": 17}, "ipfs_hosts"),
        ({"ipfs_hosts": -1}, "ipfs_hosts"),
        ({"min_clients": 11}, "min_clients"),
        ({"rounds": 0}, "rounds"),
        ({"clients_per_process": 0}, "clients_per_process"),
        ({"aggregation": "additive"}, "aggregation.mode"),
        ({"modulus_bits": 48}, "aggregation.modulus_bits"),
        ({"aggregation": "masked", "modulus_bits": 50}, "aggregation.modulus_bits"),
        ({"aggregation": "masked", "modulus_bits": 32}, "quantization could overflow 32-bit masked words"),
    ],
)
def test_a_federation_spec_refuses_bad_sizes_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FederationSpec(**overrides)


def test_a_federation_spec_is_checked_by_the_deployment_configs_own_validator() -> None:
    """Periods are the deployment's too: refused when the spec is made, not when deploying."""
    with pytest.raises(ConfigError, match="collection_period: must be 1 to"):
        FederationSpec(collection_period=0)
    with pytest.raises(ConfigError, match="target_clients: at most 4096"):
        FederationSpec(clients=4097)


@pytest.mark.parametrize("mode", [{}, {"aggregation": "masked"}, {"aggregation": "masked", "modulus_bits": 64}])
def test_the_generated_deployment_config_loads_back_as_the_runs_checked_config(tmp_path, mode) -> None:
    federation = LocalFederation(FederationSpec(clients=3, committee=3, threshold=2, min_clients=2,
                                                runs_dir=tmp_path / "runs", **mode))
    path = tmp_path / "federation.toml"
    terms = ModelTerms(load_task(DEFAULT_TASK).layout(), ("accuracy", "loss"))
    path.write_text(_deployment_toml(federation.rounds_config, terms, DEFAULT_TASK), encoding="utf-8")
    config, _ = load_config(path)
    assert config == federation.rounds_config
    assert load_model_terms(path) == terms
    assert config.clients == tuple(c.address for c in federation.clients)
    assert [m.address for m in config.committee] == [m.address for m in federation.members]
    assert config.client_keys == tuple(key.public_key for key in federation.masking_keys)
    assert config.aggregation == (Aggregation("masked", mode.get("modulus_bits", 48)) if mode else Aggregation())


def test_a_masked_run_writes_one_private_masking_key_per_client_and_registers_its_public_half(tmp_path) -> None:
    federation = LocalFederation(FederationSpec(clients=3, committee=3, threshold=2, min_clients=2,
                                                aggregation="masked", runs_dir=tmp_path / "runs"))
    federation._write_masking_keys()
    keys = [load_masking_key(key_file=federation.masking_key_path(name), environ={})
            for name in federation.client_names]
    assert tuple(key.public_key for key in keys) == federation.rounds_config.client_keys
    assert len(set(federation.rounds_config.client_keys)) == 3  # fresh keys, one per client
    for name, key in zip(federation.client_names, keys, strict=True):
        assert oct(federation.masking_key_path(name).stat().st_mode & 0o777) == "0o600"
        assert key.private_key.hex() not in repr(federation.masking_keys) + repr(federation.rounds_config)


def test_a_shamir_run_has_no_masking_keys_and_writes_none(tmp_path) -> None:
    federation = LocalFederation(FederationSpec(clients=3, committee=3, threshold=2, min_clients=2,
                                                runs_dir=tmp_path / "runs"))
    federation._write_masking_keys()
    assert federation.masking_keys == () and federation.rounds_config.client_keys == ()
    assert not any(tmp_path.rglob("*.masking.key"))


def test_a_prepared_masked_run_deploys_the_clients_keys_and_each_client_config_names_its_key_file(tmp_path) -> None:
    spec = FederationSpec(name="masked", clients=2, committee=2, threshold=2, min_clients=2, rounds=1,
                          aggregation="masked", runs_dir=tmp_path / "runs")
    federation = LocalFederation(spec)
    try:
        federation.prepare()
        assert federation.contract.aggregation() == Aggregation("masked", 48)
        assert federation.contract.client_keys() == [key.public_key for key in federation.masking_keys]
    finally:
        federation.close()
    for name in federation.client_names:
        written = tomllib.loads(federation.config_path(name).read_text(encoding="utf-8"))["client"]
        assert written["masking_key_file"] == str(federation.masking_key_path(name))
        config = load_node_config(federation.config_path(name), role="client")
        assert config.client.masking_key_file == federation.masking_key_path(name)
        assert config.federation.quantization == spec.quantization


def test_the_default_spec_is_the_issues_default_federation() -> None:
    spec = FederationSpec()
    assert (spec.name, spec.clients, spec.committee, spec.threshold, spec.rounds) == ("demo", 10, 5, 3, 10)
    assert spec.accounts == 16


def test_generated_toml_parses_back_and_is_a_valid_node_config(tmp_path) -> None:
    document = {
        "node": {"rpc_url": "ws://127.0.0.1:8545", "deployment": str(tmp_path / 'd "x".json'),
                 "store": str(tmp_path / "store"), "state_dir": str(tmp_path / "n")},
        "federation": {"seed": 7, "clip_norm": 10.0},
        "client": {"data": "c.npz", "index": 2, "learning_rate": 0.05, "options": {"alpha": "0.2", "x.y": "1"}},
    }
    parsed = tomllib.loads(_toml(document))
    assert parsed == document
    config = parse_node_config(parsed, role="client", path=tmp_path / "client-2.toml")
    assert config.client.index == 2 and config.node.http_url == "http://127.0.0.1:8545"


def test_a_prepared_runs_node_configs_show_their_knobs_and_load(tmp_path) -> None:
    """A user copying a generated config sees confirmations and the store timeouts, set to
    their defaults, and every file loads with the loader its process uses."""
    spec = FederationSpec(name="knobs", clients=2, committee=2, threshold=2, min_clients=2, rounds=1,
                          runs_dir=tmp_path / "runs")
    federation = LocalFederation(spec)
    try:
        federation.prepare()
        aggregation, client_keys = federation.contract.aggregation(), federation.contract.client_keys()
    finally:
        federation.close()
    roles = {**dict.fromkeys(federation.client_names, "client"), **dict.fromkeys(federation.member_names, "aggregator")}
    for name, role in roles.items():
        path = federation.config_path(name)
        written = tomllib.loads(path.read_text(encoding="utf-8"))["node"]
        assert (written["confirmations"], written["store_timeout_seconds"], written["fetch_timeout_seconds"]) == (
            0, 30.0, 60.0), name
        assert load_node_config(path, role=role).node.confirmations == 0
        assert "masking_key_file" not in tomllib.loads(path.read_text(encoding="utf-8")).get("client", {})
    assert not any(spec.run_dir.rglob("*.masking.key"))  # the Shamir mode has no masking keys
    assert aggregation == Aggregation() and client_keys == []
    keeper = federation.config_path("keeper")
    assert tomllib.loads(keeper.read_text(encoding="utf-8"))["node"]["confirmations"] == 0
    assert load_node_config(keeper, role="keeper").node.confirmations == 0


@pytest.mark.slow  # starts anvil and three agent processes (about 20 s)
def test_no_file_of_a_run_that_others_may_read_holds_a_private_key(tmp_path) -> None:
    """The whole class: every file a prepared and started run leaves (anvil's log with its
    banner, agents' logs, configs, the saved chain, checkpoints) is searched for the hex of
    every dev account key and every member's sealing key; only 0600 files may hold one."""
    spec = FederationSpec(name="keys", clients=2, committee=2, threshold=2, min_clients=2, rounds=1,
                          clients_per_process=1, runs_dir=tmp_path / "runs")
    federation = LocalFederation(spec)
    try:
        federation.prepare()
        federation.start_agents(skip=["client-1"])
        federation.wait_until_ready()
    finally:
        federation.close()  # anvil writes chain-state.json on the way out
    secrets = [bytes(account.key).hex() for account in dev_accounts(spec.accounts)]
    secrets += [dev_sealing_keypair(member.address)[0].hex() for member in federation.members]
    banner = federation.log_path("anvil").read_text(encoding="utf-8", errors="replace").lower()
    assert secrets[0] in banner  # the search below can see a key where one is written
    readable_by_others = stat.S_IRGRP | stat.S_IROTH
    leaks = []
    for path in sorted(p for p in spec.run_dir.rglob("*") if p.is_file()):
        if path.stat().st_mode & readable_by_others:
            text = path.read_bytes().decode("latin-1").lower()
            leaks += [f"{path.relative_to(spec.run_dir)} holds key {secrets.index(s)}" for s in secrets if s in text]
    assert leaks == []


@pytest.mark.slow  # starts anvil, two members and the keeper (about 15 s)
def test_a_member_that_dies_is_named_with_when_and_its_round_and_the_run_knows_it_cannot_finish(tmp_path) -> None:
    spec = FederationSpec(name="exits", clients=2, committee=2, threshold=2, min_clients=2, rounds=1,
                          clients_per_process=1, runs_dir=tmp_path / "runs")
    federation = LocalFederation(spec)
    try:
        federation.prepare()
        federation.start_agents(skip=federation.client_names)
        federation.wait_until_ready()
        tracker = RoundTracker(federation, evaluate_models=False)
        federation.start_training()
        tracker.wait_until(lambda t: 1 in t.records, timeout=30)
        assert tracker.note_exits() == [] and tracker.stalled_by_exits() is not None  # no client runs
        federation.kill("member-2")
        [exit_] = tracker.note_exits()
        assert (exit_.name, exit_.code, exit_.round) == ("member-2", -9, 1) and exit_.seconds > 0
        assert tracker.note_exits() == []  # each exit is told once
        console = Console(width=80, record=True)
        console.print(render_table(list(tracker.records.values()), process_exits=tracker.process_exits))
        assert "member-2 killed by signal 9" in console.export_text()
        assert tracker.stalled_by_exits() == "1 of 2 members are running, fewer than t = 2: no round can finalize"
    finally:
        federation.close()


def test_clients_are_packed_one_process_per_core_at_most_fifty_each_and_alone_when_cores_suffice(monkeypatch) -> None:
    assert auto_clients_per_process(10, 2) == 5  # the demo on this machine: two packs of five
    assert auto_clients_per_process(11, 2) == 6
    assert auto_clients_per_process(2, 2) == 1
    assert auto_clients_per_process(10, 16) == 1
    assert auto_clients_per_process(100, 2) == 50
    assert auto_clients_per_process(1000, 2) == 50
    assert auto_clients_per_process(1000, 64) == 16
    monkeypatch.setattr(launcher, "available_cores", lambda: 2)
    federation = LocalFederation(FederationSpec(clients=10))
    assert federation.client_processes == {"clients-0": [f"client-{i}" for i in range(5)],
                                           "clients-1": [f"client-{i}" for i in range(5, 10)]}
    assert federation.spec.to_json()["clients_per_process"] == 5  # the report says what ran
    for misnamed in (lambda: federation.kill("client-3"), lambda: federation.start("client-3"),
                     lambda: federation.start_agents(skip=["client-3"])):
        with pytest.raises(ConfigError, match="client-3 runs in the process clients-0 with 5 clients"):
            misnamed()  # before, a silent no-op (kill, skip) or a client started without its key
    with pytest.raises(ConfigError, match="expected keeper, clients-0..clients-1 or member-1..member-5"):
        federation.kill("member-9")
    assert FederationSpec(clients=17, clients_per_process=1).resolved_clients_per_process == 1


@pytest.mark.parametrize(("cpu_max", "cores"), [("max 100000\n", None), ("200000 100000\n", 2),
                                                ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbled", None)])
def test_a_cgroup_cpu_quota_caps_the_cores_counted(tmp_path, cpu_max, cores) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max, encoding="ascii")
    assert launcher._cgroup_cpu_quota(path) == cores
    assert launcher._cgroup_cpu_quota(tmp_path / "absent") is None
    federation = LocalFederation(FederationSpec(clients=5, min_clients=2, clients_per_process=2))
    assert federation.client_processes == {"clients-0": ["client-0", "client-1"], "clients-1": ["client-2", "client-3"],
                                           "clients-2": ["client-4"]}
    assert LocalFederation(FederationSpec(clients=3, min_clients=2, clients_per_process=1)).client_processes == {
        "client-0": ["client-0"], "client-1": ["client-1"], "client-2": ["client-2"]}


def test_the_explicit_check_period_wins_and_the_default_is_on_in_the_shamir_mode_only() -> None:
    assert FederationSpec().resolved_check_period == 10
    assert FederationSpec(aggregation_period=20).resolved_check_period == 0  # no room for two windows
    assert FederationSpec(aggregation="masked").resolved_check_period == 0
    assert FederationSpec(check_period=0).resolved_check_period == 0
    assert FederationSpec(check_period=5).resolved_check_period == 5
    # Above 1,000 shares per window the window grows: 1,000 clients x 10 members -> 100 s.
    assert FederationSpec(clients=100, committee=10, threshold=6).resolved_check_period == 10
    assert FederationSpec(clients=1000, committee=10, threshold=6, aggregation_period=300).resolved_check_period == 100
    assert FederationSpec(clients=1000, committee=10, threshold=6).resolved_check_period == 0  # 60 s: no room
    with pytest.raises(ConfigError, match="check_period"):
        FederationSpec(check_period=30)  # 2 x 30 is not below the aggregation period of 60


def test_the_demo_says_when_the_default_turns_checks_off_and_what_to_change() -> None:
    warning = FederationSpec(clients=1000, committee=10, threshold=6).checks_warning
    assert warning is not None and "100 s checks' window" in warning and "above 200 s" in warning
    assert "--aggregation-period" in warning and "it is 60 s" in warning
    for on_purpose in (FederationSpec(), FederationSpec(check_period=0), FederationSpec(aggregation="masked"),
                       FederationSpec(clients=1000, committee=10, threshold=6, aggregation_period=300)):
        assert on_purpose.checks_warning is None


def test_the_demo_says_what_its_checks_leave_out_of_the_norm_check_and_what_to_change() -> None:
    note = FederationSpec(committee=4).norm_check_note  # 4 members, t = 3
    assert note is not None and "2t - 1 = 5" in note and "--committee 5" in note
    # the members weight updates, so the limit is one sample's whatever max_samples; a clip x 2^f too
    # wide for the wrap-around check (which comes with the norm check) is refused outright
    with pytest.raises(ConfigError, match="clip_norm 100000.0 at 16 fractional bits .* lower clip_norm or fractional_bits"):
        FederationSpec(clip_norm=1e5, max_samples=100)
    assert FederationSpec(clip_norm=1e5, committee=4).norm_check_note is not None  # no norm check: no wrap check
    for enough_or_off in (FederationSpec(), FederationSpec(max_samples=2**30 // 10),
                          FederationSpec(committee=3, threshold=2, max_samples=1000),
                          FederationSpec(check_period=0), FederationSpec(aggregation="masked")):
        assert enough_or_off.norm_check_note is None


def test_the_demo_says_how_a_client_can_keep_its_norm_unchecked_and_from_which_committee_that_excludes_it() -> None:
    note = FederationSpec().norm_dodge_note  # 5 / 3: 5 <= 3t - 4, both dodges
    assert note is not None and "withholding the shares of 1 member or corrupting them" in note
    assert "--committee 7 excludes" in note
    note = FederationSpec(committee=6).norm_dodge_note  # 3t - 3: the dispute dodge is stopped
    assert note is not None and "withholding the shares of 2 members (" in note
    assert FederationSpec(committee=7, threshold=4).norm_dodge_note is not None  # 7 < 10
    note = FederationSpec(committee=7).norm_dodge_note  # 3t - 2: excluded, at an availability cost
    assert note is not None and "is excluded: with more than 2 members down or silent" in note
    for off in (FederationSpec(committee=4), FederationSpec(check_period=0), FederationSpec(aggregation="masked")):
        assert off.norm_dodge_note is None


def test_the_readiness_wait_grows_with_the_number_of_clients() -> None:
    from orchestration.launcher import ready_timeout

    assert ready_timeout(10) >= 120  # what every small federation had
    assert ready_timeout(1000) >= 300 > ready_timeout(100)  # 20 packs of 50 took 115 s to over 120 s
