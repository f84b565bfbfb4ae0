"""The explorer and the models a federation made: the clients' federated evaluation each finalized
model blob carries, shown beside the central test metrics and lined up with the model it
evaluates, and the models' downloads (the blob as stored, and a PyTorch state dict made with
the task) for this federation's model CIDs only.

The federation here is the two-round one of ``tests/fixtures/federation.py`` on its own anvil,
except that each finalized model carries metrics in its header, as the members write them:
round 1's result carries the clients' evaluation of the initial model, round 2's that of round
1's model. The run folder names a tiny task (``tests/fixtures/linear_task.py``: one Linear(3, 4), the
fixture's layout) in ``nodes/client-0.toml``, as the launcher does.
"""

from __future__ import annotations

import io
from html import escape
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from selenium.webdriver.common.by import By

from agents.learning import DEFAULT_TASK, load_task
from fedtss.chain import RoundState
from fedtss.chain.devnode import dev_accounts, start_anvil
from fedtss.formats import decode_model, decode_model_metrics, encode_model
from orchestration.explorer.app import create_app
from orchestration.explorer.chainview import FederationView, RoundSummary
from orchestration.explorer.chart import FEDERATED_LABEL, data_table, federated_series
from orchestration.explorer.modelfiles import (
    Evaluation,
    federated_evaluations,
    report_evaluations,
    task_from_run,
)
from tests.fixtures.anvil import AnvilNode
from tests.fixtures.browser import ARTIFACTS, serve_app
from tests.fixtures.federation import COMMITTEE, TwoRoundFederation, _Driver, _tensors, _tx, deploy_federation

#: What each round's result blob carries: the clients' evaluation of the model the round started from.
CARRIED = {1: {"accuracy": 0.1, "loss": 2.3}, 2: {"accuracy": 0.55, "loss": 1.25}}
REPORT = {"rounds": [{"round": 1, "accuracy": 0.6, "loss": 1.2, "federated": {}},
                     {"round": 2, "accuracy": 0.7, "loss": 0.9, "federated": {}}]}

#: A task with the fixture's layout (one ``layer``: Linear(3, 4)).
TASK = Path(__file__).resolve().parents[1] / "fixtures" / "linear_task.py"


class _MetricsDriver(_Driver):
    """The fixture's driver, but the model a member votes for carries the round's federated metrics."""

    def vote(self, round_: int, member_number: int, model_seed: int) -> str:
        cid = self.fed.store.put(encode_model(_tensors(model_seed), metrics=CARRIED[round_]))
        receipt = self.fed.contract.propose_model(self.accounts[COMMITTEE[member_number - 1]], round_, cid)
        self.fed.txs[f"vote {round_} {member_number}"] = _tx(receipt)
        return cid


@dataclass(frozen=True)
class MetricsRun:
    fed: TwoRoundFederation
    view: FederationView
    task: Path
    initial_model: str
    url: str  # the explorer on it, served for the browser


def _run_with_metrics(fed: TwoRoundFederation) -> str:
    """Two rounds, three clients each, members 1 and 2 aggregate and vote; the initial model's CID."""
    driver = _MetricsDriver(fed)
    model0 = fed.store.put(encode_model(_tensors(0)))
    fed.txs["start"] = _tx(fed.contract.start_training(fed.anvil.accounts[0], model0, 2))
    for round_ in (1, 2):
        for client in (6, 7, 8):  # the third closes collection (target 3)
            driver.submit(round_, client)
        for member in (1, 2):
            driver.aggregate(round_, member, fed.submitters[round_])
        fed.models[round_] = driver.vote(round_, 1, 10 * round_)
        driver.vote(round_, 2, 10 * round_)
    return model0


@pytest.fixture(scope="module")
def metrics_run(rounds_artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsRun]:
    """Its own anvil, so the session's chain and the other tests' pages are left as they were."""
    node = start_anvil(accounts=10)
    try:
        root = tmp_path_factory.mktemp("metrics")
        fed = deploy_federation(AnvilNode(node, dev_accounts(10)), rounds_artifact, root / "run")
        model0 = _run_with_metrics(fed)
        (fed.run_dir / "nodes").mkdir()
        (fed.run_dir / "nodes" / "client-0.toml").write_text(f'[client]\ntask = "{TASK}"\n', encoding="utf-8")
        (fed.run_dir / "report.json").write_text(json.dumps(REPORT), encoding="utf-8")
        view = FederationView(node.url, fed.deployment, run_dir=fed.run_dir)
        with serve_app(create_app(view, report_path=fed.run_dir / "report.json", store=fed.store,
                                  poll_seconds=0.5)) as url:
            yield MetricsRun(fed, view, TASK, model0, url)
    finally:
        node.stop()


@contextmanager
def _client(run: MetricsRun, view: FederationView | None = None, **options) -> Iterator[httpx.Client]:
    """An HTTP client of the explorer on ``run`` (its run folder's report and store unless told)."""
    options.setdefault("report_path", run.fed.run_dir / "report.json")
    options.setdefault("store", run.fed.store)
    with serve_app(create_app(view or run.view, **options)) as url, httpx.Client(base_url=url) as http:
        yield http


def _get(run: MetricsRun, path: str, **options) -> str:
    with _client(run, **options) as http:
        return http.get(path).text


def _cell(html: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (tags dropped, spaces collapsed)."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(dd|p)>', html, re.S)
    assert found, f"no #{element_id} on the page"
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


# ------------------------------------------------------------------- federated metrics


def test_the_fixtures_result_blobs_carry_the_evaluation_of_the_model_each_round_started_from(metrics_run) -> None:
    fed = metrics_run.fed
    for round_, cid in fed.models.items():
        assert decode_model_metrics(fed.store.get(cid, max_bytes=1 << 20), max_bytes=1 << 20) == CARRIED[round_]


def test_rounds_page_shows_a_rounds_federated_metrics_from_the_next_rounds_result_beside_its_test_accuracy(
        browser, metrics_run) -> None:
    browser.get(metrics_run.url + "/rounds")
    rows = {row.get_attribute("data-round"): row
            for row in browser.find_elements(By.CSS_SELECTOR, "table.rounds tbody tr")}
    assert rows["1"].find_element(By.CSS_SELECTOR, "td.federated").text == "accuracy 55.00%, loss 1.2500"
    assert rows["1"].find_element(By.CSS_SELECTOR, "td.test-accuracy").text == "60.00%"
    assert rows["2"].find_element(By.CSS_SELECTOR, "td.federated").text == "known one round later"
    note = browser.find_element(By.ID, "federated-note").text
    assert "clients' own data" in note and "secret-shared" in note and "one round later" in note
    desc = browser.find_element(By.CSS_SELECTOR, "svg.chart desc").get_attribute("textContent")
    assert f"{FEDERATED_LABEL}: round 1 55.00%" in desc  # the accuracy chart has the federated series

    browser.get(metrics_run.url + "/rounds/1")
    assert browser.find_element(By.ID, "round-federated").text == "accuracy 55.00%, loss 1.2500 (shared in round 2)"
    assert browser.find_element(By.ID, "start-federated").text.startswith("accuracy 10.00%, loss 2.3000")
    assert browser.find_element(By.ID, "round-accuracy").text == "60.00%"
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1366, max(900, height))
    try:
        assert browser.save_screenshot(str(ARTIFACTS / "explorer-federated-metrics.png"))
    finally:
        browser.set_window_size(1366, 900)
    browser.get(metrics_run.url + "/rounds/2")
    assert "not known yet" in browser.find_element(By.ID, "round-federated").text
    assert browser.find_element(By.ID, "start-federated").text.startswith("accuracy 55.00%")


def test_overview_shows_the_federated_metrics_of_recent_rounds_and_links_the_latest_models_downloads(
        metrics_run) -> None:
    page = _get(metrics_run, "/")
    assert "accuracy 55.00%, loss 1.2500" in page
    latest = metrics_run.fed.models[2]
    assert f'href="/model/{latest}" download' in page and f'href="/model/{latest}.pt" download' in page


def test_without_a_store_the_explorer_shows_no_federated_metrics_and_no_download(metrics_run) -> None:
    with _client(metrics_run, store=None) as http:
        page = http.get("/rounds/1").text
        assert 'id="round-federated"' not in page and "/model/" not in page
        assert http.get(f"/model/{metrics_run.fed.models[1]}").status_code == 404


def test_report_federated_metrics_are_shown_when_no_blob_carries_them(metrics_run, tmp_path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"rounds": [{"round": 1, "accuracy": 0.6, "federated": {"accuracy": 0.5}}]}))
    page = _get(metrics_run, "/rounds/1", report_path=report, store=None)
    assert _cell(page, "round-federated") == "accuracy 50.00% (from report.json)"


def test_federated_evaluation_of_a_rounds_model_is_carried_by_the_next_round_that_trained_from_it() -> None:
    finalized, failed = RoundState.Finalized, RoundState.Failed
    rounds = [RoundSummary(1, finalized, model_cid="m0", result_cid="m1"),
              RoundSummary(2, failed, model_cid="m1"),  # failed: round 3 reopens from m1
              RoundSummary(3, finalized, model_cid="m1", result_cid="m3"),
              RoundSummary(4, finalized, model_cid="m3", result_cid="m4")]
    carried = {1: {"accuracy": 0.1}, 3: {"accuracy": 0.5}, 4: {"accuracy": 0.7}}
    assert federated_evaluations(rounds, carried) == {1: Evaluation({"accuracy": 0.5}, 3),
                                                      3: Evaluation({"accuracy": 0.7}, 4)}
    assert federated_evaluations(rounds, {}) == {}
    report = {"rounds": [{"round": 1, "federated": {"accuracy": 0.5, "loss": float("nan"), "x": True}},
                         {"round": 2, "federated": {}}, {"round": "3", "federated": {"accuracy": 1}}]}
    assert report_evaluations(report) == {1: Evaluation({"accuracy": 0.5}, None)}
    assert report_evaluations(None) == {}


def test_federated_series_plot_accuracy_in_percent_and_loss_and_fill_their_own_table_columns() -> None:
    accuracy, loss = federated_series({1: {"accuracy": 0.5, "loss": 1.5}, 2: {"loss": 1.0}})
    assert [(s.label, s.points, s.css_class) for s in accuracy] == [(FEDERATED_LABEL, ((1, 50.0),), "s-federated")]
    assert [s.points for s in loss] == [((1, 1.5), (2, 1.0))]
    assert federated_series({}) == ([], [])
    table = str(data_table(accuracy, loss))
    assert f'<th scope="col">{escape(FEDERATED_LABEL)} accuracy (%)</th>' in table


# ------------------------------------------------------------------------------ downloads


def test_model_route_serves_the_stored_blob_of_each_model_of_the_federation(metrics_run) -> None:
    fed = metrics_run.fed
    with _client(metrics_run) as http:
        for cid in (metrics_run.initial_model, fed.models[1], fed.models[2]):
            response = http.get(f"/model/{cid}")
            assert response.status_code == 200
            assert response.content == fed.store.get(cid, max_bytes=1 << 20)
            assert response.headers["content-type"] == "application/octet-stream"
            assert response.headers["content-disposition"] == f'attachment; filename="{cid}.bin"'


def test_model_route_answers_404_for_a_cid_that_is_not_one_of_the_federations_models(metrics_run) -> None:
    fed = metrics_run.fed
    manifest = next(iter(fed.manifests.values()))  # on chain and in the store, but no model
    stray = fed.store.put(encode_model(_tensors(7)))  # a model in the store that no round names
    with _client(metrics_run) as http:
        for cid in (manifest, stray):
            for path in (f"/model/{cid}", f"/model/{cid}.pt"):
                response = http.get(path)
                assert response.status_code == 404, path
                assert "is not a model of this federation" in response.text
                assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("param", ["²", "bafy-not-a-cid", "Qm" + "0" * 44, "b" + "a" * 5000, "%00"])
def test_model_route_answers_400_for_a_malformed_cid(metrics_run, param: str) -> None:
    with _client(metrics_run) as http:
        for path in (f"/model/{param}", f"/model/{param}.pt"):
            response = http.get(path)
            assert response.status_code == 400, path
            assert "is not a CID" in response.text


def test_model_route_refuses_a_model_larger_than_the_bound_with_413(metrics_run) -> None:
    with _client(metrics_run, model_max_bytes=64) as http:
        response = http.get(f"/model/{metrics_run.fed.models[1]}")
    assert response.status_code == 413 and "fedtss model export" in response.text


def test_state_dict_route_gives_a_state_dict_that_the_tasks_model_loads(metrics_run) -> None:
    cid = metrics_run.fed.models[2]
    with _client(metrics_run) as http:
        response = http.get(f"/model/{cid}.pt")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="{cid}.pt"'
    state = torch.load(io.BytesIO(response.content), weights_only=True)
    net = load_task(str(metrics_run.task)).module.model()
    net.load_state_dict(state)
    stored = decode_model(metrics_run.fed.store.get(cid, max_bytes=1 << 20), max_bytes=1 << 20)
    for name, array in stored.items():
        np.testing.assert_array_equal(net.state_dict()[name].numpy(), array)


def test_the_task_comes_from_the_run_folders_client_config_or_the_task_option(metrics_run, tmp_path) -> None:
    assert task_from_run(metrics_run.fed.run_dir) == str(metrics_run.task)
    assert task_from_run(tmp_path) is None
    assert task_from_run(None) is None
    view = FederationView(metrics_run.view.rpc_url, metrics_run.fed.deployment)  # no run folder: no task
    cid = metrics_run.fed.models[1]
    with _client(metrics_run, view, report_path=None) as http:
        unknown = http.get(f"/model/{cid}.pt")
        assert unknown.status_code == 404 and "does not know this federation" in unknown.text
        assert http.get(f"/model/{cid}").status_code == 200  # the blob needs no task
        page = http.get("/rounds/1").text
        assert f'href="/model/{cid}"' in page and ".pt\"" not in page
    with _client(metrics_run, view, report_path=None, task=str(metrics_run.task)) as http:
        assert http.get(f"/model/{cid}.pt").status_code == 200


def test_state_dict_route_answers_409_when_the_task_does_not_fit_the_model(metrics_run) -> None:
    with _client(metrics_run, task=DEFAULT_TASK) as http:  # the digits MLP: another layout
        response = http.get(f"/model/{metrics_run.fed.models[1]}.pt")
    assert response.status_code == 409 and "does not fit" in response.text


def test_cid_page_of_a_model_links_its_downloads_and_the_metrics_it_carries(metrics_run) -> None:
    cid = metrics_run.fed.models[2]
    manifest = next(iter(metrics_run.fed.manifests.values()))
    with _client(metrics_run) as http:
        page = http.get(f"/cid/{cid}").text
        assert f'href="/model/{cid}" download' in page
        assert "accuracy 55.00%, loss 1.2500" in _cell(page, "cid-metrics")
        assert 'id="cid-model"' not in http.get(f"/cid/{manifest}").text
