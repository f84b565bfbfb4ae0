"""Gas of one full round on a real anvil: 10 clients, a committee of 5, t = 3.

    python -m benchmarks.gas

Starts its own anvil, deploys FedTSSRounds, runs `startTraining` (2 rounds requested, so the
finalizing vote also opens round 2), 10 `submitUpdate` (the 10th reaches the target and
closes collection), 5 `submitAggregateShare` over the same client set (the 3rd reaches the
threshold, the last 2 are the extra shares that help error correction) and 3 `proposeModel`
(the 3rd finalizes round 1 and opens round 2). Gas is read from the receipts, so the figures
are deterministic. Writes benchmarks/results/gas.json and prints a table; asserts nothing.

`round_total` is the sum over every transaction above, `startTraining` included.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from fedtss.chain import (
    ClientSet,
    Member,
    RoundsConfig,
    RoundsContract,
    compile_contracts,
    connect,
    deploy_rounds,
    dev_sealing_keypair,
)
from fedtss.chain.devnode import dev_accounts, start_anvil
from fedtss.cid import compute_cid

__all__ = ["CURVE_CLIENTS", "TARGETS", "main", "measure_round", "submit_update_curve"]

RESULTS = Path(__file__).resolve().parent / "results" / "gas.json"
CLIENTS = 10
COMMITTEE = 5
THRESHOLD = 3
#: The issue's budgets: median for submitUpdate, max for the others.
TARGETS = {
    "submitUpdate": 60_000,
    "submitAggregateShare": 70_000,
    "proposeModel": 70_000,
    "proposeModel:finalizing": 150_000,
    "round_total": 1_200_000,
}


def _cid(label: str) -> str:
    """A raw CID (the sha2-256 of ``label``): the calldata, and so the gas, never changes."""
    return compute_cid(label.encode())


def measure_round(client_count: int = CLIENTS) -> dict:
    """Run one round with ``client_count`` submissions and return ``{"calls": {name: {count,
    median, max}}, "round_total": ...}``."""
    artifact = compile_contracts(build_dir=None)["FedTSSRounds"]
    node = start_anvil(accounts=1 + COMMITTEE + client_count)
    try:
        accounts = dev_accounts(1 + COMMITTEE + client_count)
        operator, members, clients = accounts[0], accounts[1 : 1 + COMMITTEE], accounts[1 + COMMITTEE :]
        config = RoundsConfig(
            committee=tuple(Member(m.address, dev_sealing_keypair(m.address)[1]) for m in members),
            threshold=THRESHOLD,
            clients=tuple(c.address for c in clients),
            min_clients=3,
            target_clients=client_count,
            collection_period=600,
            aggregation_period=600,
        )
        w3 = connect(node.url)
        address, _ = deploy_rounds(w3, operator, artifact, config)
        rounds = RoundsContract(w3, address, artifact.abi)
        gas: dict[str, list[int]] = defaultdict(list)
        gas["startTraining"].append(rounds.start_training(operator, _cid("model-0"), 2)["gasUsed"])
        for i, client in enumerate(clients):
            gas["submitUpdate"].append(rounds.submit_update(client, 1, _cid(f"manifest-{i}"))["gasUsed"])
        everyone = ClientSet.of(range(client_count))
        for j, m in enumerate(members):
            receipt = rounds.submit_aggregate_share(m, 1, _cid(f"share-{j}"), everyone)
            gas["submitAggregateShare"].append(receipt["gasUsed"])
        for j, m in enumerate(members[:THRESHOLD]):
            receipt = rounds.propose_model(m, 1, _cid("model-1"))
            key = "proposeModel:finalizing" if j == THRESHOLD - 1 else "proposeModel"
            gas[key].append(receipt["gasUsed"])
        if rounds.current_round() != 2:
            raise RuntimeError("the benchmark round did not finalize and open round 2")
    finally:
        node.stop()
    calls = {
        name: {"count": len(values), "median": int(statistics.median(values)), "max": max(values)}
        for name, values in gas.items()
    }
    return {"calls": calls, "round_total": sum(sum(v) for v in gas.values())}


def format_table(result: dict) -> str:
    rows = [f"{'call':<26}{'count':>6}{'median':>10}{'max':>10}{'target':>12}"]
    for name, stats in result["calls"].items():
        target = TARGETS.get(name)
        rows.append(
            f"{name:<26}{stats['count']:>6}{stats['median']:>10,}{stats['max']:>10,}"
            f"{(f'{target:,}' if target else '-'):>12}"
        )
    rows.append(f"{'round_total':<26}{'':>6}{'':>10}{result['round_total']:>10,}{TARGETS['round_total']:>12,}")
    return "\n".join(rows)


#: Client counts of the submitUpdate curve (issue 14: gas per submission must not grow with the
#: number of clients; at most 45,000 at the median with 1,000). 300 and 1,000 need a client set of
#: two and four 256-bit words.
CURVE_CLIENTS = (10, 100, 300, 1000)


def submit_update_curve(counts: tuple[int, ...] = CURVE_CLIENTS) -> dict[str, dict[str, int]]:
    """submitUpdate gas (median, max) and the round's total per client count."""
    curve = {}
    for count in counts:
        result = measure_round(count)
        stats = result["calls"]["submitUpdate"]
        curve[str(count)] = {"median": stats["median"], "max": stats["max"], "round_total": result["round_total"]}
    return curve


def main() -> None:
    result = measure_round()
    result["submit_update_curve"] = submit_update_curve()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(format_table(result))
    print("\nsubmitUpdate by clients per round: " + ", ".join(
        f"{count}: median {c['median']:,}, max {c['max']:,}" for count, c in result["submit_update_curve"].items()))
    print(f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
