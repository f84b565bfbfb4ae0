"""The explorer in a real headless Chromium against a real anvil with a two-round federation.

Also: a node that goes away and comes back (the page says so, then recovers without a reload),
reopening a saved chain read-only, hostile input (calls mined with garbled calldata, odd path
and query parameters: never a 5xx, always a page saying what was wrong), and the pure helpers
(search classification, charts, logs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from agents.records import EXCLUSIONS_FILE, ExclusionRecord, append_exclusion, read_exclusions
from fedtss.chain.devnode import dev_accounts, start_anvil
from fedtss.cid import cid_from_parts, cid_to_parts
from fedtss.validation import CHECK_BYTES
from orchestration.explorer.app import PARTIAL_HEADER, create_app
from orchestration.explorer.chainview import FederationView, classify_query, exclusions_from_records
from orchestration.explorer.chart import Series, data_table, line_chart, report_series
from orchestration.explorer.command import reopen_chain
from orchestration.node import free_port, start_local_chain
from tests.fixtures.anvil import AnvilNode
from tests.fixtures.browser import ARTIFACTS, serve_app
from tests.fixtures.federation import REPORT_ROUNDS, TwoRoundFederation, deploy_federation, run_two_rounds

WAIT_SECONDS = 20


def _wait(browser, condition, message: str):
    return WebDriverWait(browser, WAIT_SECONDS).until(condition, message)


def _text(browser, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


# ------------------------------------------------------------------------------ pages


def test_overview_shows_the_current_round_its_state_and_the_latest_model(browser, explorer_url,
                                                                         two_round_federation) -> None:
    browser.get(explorer_url + "/")
    current = browser.find_element(By.ID, "current-round")
    assert (current.get_attribute("data-round"), current.get_attribute("data-state")) == ("2", "Finalized")
    assert current.text == "Round 2"
    assert _text(browser, "#latest-model") == two_round_federation.models[2]
    assert _text(browser, "#chain-id") == "31337"


def test_round_page_lists_exactly_the_clients_that_submitted(browser, explorer_url, two_round_federation) -> None:
    fed = two_round_federation
    browser.get(explorer_url + "/rounds/1")
    rows = browser.find_elements(By.CSS_SELECTOR, "#submissions tbody tr")
    assert [row.get_attribute("data-client") for row in rows] == fed.submitters[1]
    manifests = [row.find_element(By.CSS_SELECTOR, "a[href^='/cid/']").get_attribute("href").rsplit("/", 1)[1]
                 for row in rows]
    assert manifests == [fed.manifests[(1, c)] for c in fed.submitters[1]]
    votes = [row.find_elements(By.TAG_NAME, "td")[2].text for row in browser.find_elements(By.CSS_SELECTOR,
                                                                                            "#votes tbody tr")]
    assert votes == ["matching", "conflicting", "matching"]
    assert _text(browser, "#round-accuracy") == f"{100 * REPORT_ROUNDS[0]['accuracy']:.2f}%"
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart title")
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1366, max(900, height))
    try:
        assert browser.save_screenshot(str(ARTIFACTS / "explorer-round-1.png"))
    finally:
        browser.set_window_size(1366, 900)
    browser.get(explorer_url + "/rounds/2")
    rows = browser.find_elements(By.CSS_SELECTOR, "#submissions tbody tr")
    assert [row.get_attribute("data-client") for row in rows] == fed.submitters[2]


def test_transaction_page_shows_the_decoded_call_receipt_and_events(browser, explorer_url,
                                                                    two_round_federation) -> None:
    fed = two_round_federation
    client = fed.submitters[1][0]
    browser.get(explorer_url + "/tx/" + fed.txs[f"submit 1 {client}"])
    assert _text(browser, "#tx-function") == "submitUpdate"
    arguments = {row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").text
                 for row in browser.find_elements(By.CSS_SELECTOR, "#tx-arguments tbody tr")}
    assert arguments["round"] == "1"
    assert arguments["digest"] == "0x" + cid_to_parts(fed.manifests[(1, client)])[1].hex()
    assert browser.find_element(By.CSS_SELECTOR, "#tx-arguments a[href^='/cid/']").get_attribute("title") == \
        fed.manifests[(1, client)]
    assert _text(browser, "#tx-status") == "success"
    assert "UpdateSubmitted" in browser.find_element(By.ID, "events-h").find_element(By.XPATH, "..").text


def _search(browser, explorer_url: str, text: str) -> None:
    browser.get(explorer_url + "/")
    box = browser.find_element(By.CSS_SELECTOR, "form[role=search] input[name=q]")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=q]").text == "Search"
    box.send_keys(text, Keys.ENTER)


def test_search_box_finds_a_cid(browser, explorer_url, two_round_federation) -> None:
    fed = two_round_federation
    client = fed.submitters[1][1]
    _search(browser, explorer_url, fed.manifests[(1, client)])
    _wait(browser, lambda b: "/cid/" in b.current_url, "search did not open the CID page")
    assert _text(browser, "#cid") == fed.manifests[(1, client)]
    uses = _text(browser, "#cid-uses")
    assert "client manifest" in uses and client in uses


def test_search_box_finds_an_address_and_its_role(browser, explorer_url, two_round_federation) -> None:
    member = two_round_federation.anvil.accounts[2].address
    _search(browser, explorer_url, member.lower())
    _wait(browser, lambda b: "/address/" in b.current_url, "search did not open the address page")
    assert _text(browser, "#address") == member
    assert "committee member 2 of 3" in _text(browser, "#roles")
    assert "proposeModel(round 1)" in _text(browser, "#address-txs")


def test_search_resolves_rounds_blocks_and_hashes_and_says_when_nothing_matches(explorer_url,
                                                                             two_round_federation) -> None:
    fed = two_round_federation
    with httpx.Client(base_url=explorer_url) as http:
        def target(q: str) -> str:
            response = http.get("/search", params={"q": q})
            return response.headers.get("location", f"({response.status_code})")

        assert target("2") == "/rounds/2"
        assert target("block 3") == "/blocks/3"
        assert target(fed.txs["start"]) == f"/tx/{fed.txs['start']}"
        assert target("0x" + "ab" * 32) == "(200)"
        assert "Nothing in this federation matches" in http.get("/search", params={"q": "0x" + "ab" * 32}).text
        hello = http.get("/search", params={"q": "hello"})
        assert hello.status_code == 400 and "is not a round number" in hello.text


def test_pages_that_do_not_exist_answer_404_and_partial_requests_return_only_the_content(explorer_url) -> None:
    with httpx.Client(base_url=explorer_url) as http:
        assert http.get("/rounds/99").status_code == 404
        assert http.get("/tx/0x" + "12" * 32).status_code == 404
        assert http.get("/tx/0x1234").status_code == 400  # not a hash at all: the page says so
        partial = http.get("/rounds", headers={PARTIAL_HEADER: "1"})
        assert partial.status_code == 200
        assert "<html" not in partial.text and "<h1>Rounds</h1>" in partial.text
        head = http.get("/api/head").json()
        assert head["ok"] and head["head"] > 0


# ------------------------------------------------------- a live federation, a node away


_FOCUS_FIRST_LINK = "const a = document.querySelector('#content a[href]'); a.focus(); return a.getAttribute('href');"
_FOCUSED_LINK = ("const a = document.activeElement; "
                 "return document.getElementById('content').contains(a) ? a.getAttribute('href') : null;")


def _settled(path: Path, quiet: float = 0.5, timeout: float = 30.0) -> tuple[int, bytes]:
    """(mtime, bytes) of ``path`` once nothing has written it for ``quiet`` seconds (anvil's state
    dump on a loaded machine was seen to land just after the process was waited for)."""
    deadline = time.monotonic() + timeout
    last = path.stat().st_mtime_ns
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = path.stat().st_mtime_ns
        if now == last:
            break
        last = now
    return last, path.read_bytes()


def test_pages_follow_the_chain_and_survive_a_node_that_goes_away(browser, rounds_artifact, tmp_path) -> None:
    """New blocks update the page without a reload, keeping keyboard focus, and the live region
    stays quiet while nothing happens; a stopped node shows the error; a restarted
    node (same port, same saved state) brings the page back. Then the saved chain reopens read-only."""
    state_file, port = tmp_path / "chain-state.json", free_port()
    node = start_local_chain(state_file, accounts=10, port=port)
    try:
        fed = deploy_federation(AnvilNode(node, dev_accounts(10)), rounds_artifact, tmp_path / "run")
        view = FederationView(node.url, fed.deployment, run_dir=fed.run_dir, timeout=2.0)
        report = tmp_path / "report.json"  # charts, and their numbers in a <details>
        report.write_text('{"rounds": [{"round": 1, "accuracy": 0.9, "loss": 0.3}]}')
        with serve_app(create_app(view, report_path=report, poll_seconds=0.3)) as url:
            browser.get(url + "/")
            browser.execute_script("document.querySelector('details.chart-data').open = true;")
            assert browser.find_element(By.ID, "current-round").get_attribute("data-round") == "0"
            browser.execute_script("window.__notReloaded = true;")
            spoken = _text(browser, "#live-status")
            time.sleep(1.2)  # two polls (every 0.5 s at least) of an idle chain
            assert _text(browser, "#live-status") == spoken, "the live region spoke with nothing new to say"
            focused = browser.execute_script(_FOCUS_FIRST_LINK)
            model = fed.store.put(b"model zero")
            fed.contract.start_training(fed.anvil.accounts[0], model, 1)
            _wait(browser, lambda b: b.find_element(By.ID, "current-round").get_attribute("data-state")
                  == "Collecting", "the overview did not show the opened round")
            assert browser.execute_script("return window.__notReloaded === true;")
            assert browser.execute_script(_FOCUSED_LINK) == focused, "the update moved keyboard focus"
            assert browser.execute_script("return document.querySelector('details.chart-data').open;"), \
                "the update closed the table the reader opened"
            assert "left)" in _text(browser, ".countdown")

            node.stop()
            banner = _wait(browser, lambda b: b.find_element(By.ID, "node-error") if
                           b.find_element(By.ID, "node-error").is_displayed() else False,
                           "no error shown while the node was away")
            assert "does not answer" in banner.text
            with httpx.Client(base_url=url) as http:
                down = http.get("/rounds/1")
                assert down.status_code == 503 and str(port) in down.text

            node = start_local_chain(state_file, accounts=10, port=port)
            _wait(browser, lambda b: not b.find_element(By.ID, "node-error").is_displayed(),
                  "the error stayed after the node came back")
            assert browser.find_element(By.ID, "current-round").get_attribute("data-state") == "Collecting"
            assert browser.execute_script("return window.__notReloaded === true;")
    finally:
        node.stop()
    saved = _settled(state_file)
    reopened = reopen_chain(state_file)
    try:
        view = FederationView(reopened.url, fed.deployment)
        assert [(r.round, r.state.name) for r in view.rounds()] == [(1, "Collecting")]
    finally:
        reopened.stop()
    assert (state_file.stat().st_mtime_ns, state_file.read_bytes()) == saved  # read-only: never written back


# ------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(("text", "expected"), [
    ("2", ("round", "2")), ("round 7", ("round", "7")), ("9", ("block", "9")), ("#2", ("block", "2")),
    ("block 1", ("block", "1")), ("0x" + "0f" * 32, ("hash", "0x" + "0f" * 32)),
    ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", ("address", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")),
    ("bafkreiegdx2uvlztflfvjfrxblowxamqkse726ivuf7it7qvbm7fhsvrrq",
     ("cid", "bafkreiegdx2uvlztflfvjfrxblowxamqkse726ivuf7it7qvbm7fhsvrrq")),
    ("not a thing", ("unknown", "not a thing")),
])
def test_classify_query_names_what_a_search_entry_is(text: str, expected: tuple[str, str]) -> None:
    assert classify_query(text, current_round=3) == expected


def test_recorded_exclusions_are_shown_with_their_party_and_who_reported_them(tmp_path) -> None:
    member = tmp_path / "nodes" / "member-1"
    by = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    append_exclusion(member, ExclusionRecord(3, "InvalidSealedShare", by=by.lower(),
                                             client="0x976ea74026e726554db657fa54763abd0c3a0aa9"))
    append_exclusion(member, ExclusionRecord(4, "InconsistentShares", by=by, member=2,
                                             member_address="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"))
    with (member / EXCLUSIONS_FILE).open("a") as file:
        file.write('{"round": 3, "reason": "torn line from a cra')
    round3 = exclusions_from_records(read_exclusions(member / EXCLUSIONS_FILE, round_=3), "member-1/exclusions.jsonl")
    assert [(e.party, e.kind) for e in round3] == [("0x976EA74026E726554dB657fA54763abd0C3a0aa9", "client")]
    assert round3[0].reason == f"InvalidSealedShare (reported by {by})"
    round4 = exclusions_from_records(read_exclusions(member / EXCLUSIONS_FILE, round_=4), "member-1/exclusions.jsonl")
    assert [(e.party, e.kind) for e in round4] == [("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "member")]


def test_chart_plots_every_round_of_the_report_and_describes_it_for_screen_readers() -> None:
    report = {"rounds": [{"round": 1, "accuracy": 0.5, "loss": 1.0}, {"round": 2, "accuracy": 0.9, "loss": None}],
              "plaintext_fedavg": {"accuracy": [0.55, 0.85]}}
    accuracy, loss = report_series(report)
    assert [s.points for s in accuracy] == [((1, 50.0), (2, 90.0)), ((1, pytest.approx(55.0)), (2, 85.0))]
    assert [s.points for s in loss] == [((1, 1.0),)]
    svg = str(line_chart(accuracy, title="Accuracy", unit="%", highlight=2))
    assert svg.count("<circle") == 4 and 'class="highlight"' in svg
    assert "round 2 90.00%" in svg and "<title" in svg
    assert str(line_chart([Series("x", (), "s")], title="Empty", unit="")) == ""


def test_the_charts_numbers_come_as_a_table_with_a_row_per_round_and_a_column_per_line() -> None:
    report = {"rounds": [{"round": 1, "accuracy": 0.5, "loss": 1.0}, {"round": 2, "accuracy": 0.9, "loss": None}],
              "plaintext_fedavg": {"accuracy": [0.55, 0.85]}}
    table = str(data_table(*report_series(report)))
    assert table.startswith("<details") and "<caption" in table
    assert table.count('<th scope="row">') == 2 and table.count('<th scope="col">') == 4
    assert "<tr><th scope=\"row\">2</th><td>90.00</td><td>85.00</td><td>-</td></tr>" in table
    assert str(data_table([], [])) == ""


def test_a_hosted_nodes_api_key_in_the_url_never_reaches_a_page_or_an_error(two_round_federation) -> None:
    secret_url = f"http://127.0.0.1:{free_port()}/v3/SECRETKEY123?token=SECRETTOKEN"  # nothing listens there
    view = FederationView(secret_url, two_round_federation.deployment, timeout=2.0)
    with serve_app(create_app(view, poll_seconds=60)) as url, httpx.Client(base_url=url) as http:
        page = http.get("/rounds/1")
    assert page.status_code == 503 and "127.0.0.1" in page.text
    assert "SECRETKEY123" not in page.text and "SECRETTOKEN" not in page.text


def test_a_reverted_transaction_shows_the_custom_error_replayed_read_only(chain, deploy, rounds_artifact, tmp_path) -> None:
    import json

    from fedtss.chain import Deployment
    from tests.fixtures.anvil import default_rounds_config

    contract = deploy()
    abi_path = tmp_path / "abi.json"
    abi_path.write_text(json.dumps(rounds_artifact.abi), encoding="utf-8")
    deployment = Deployment(chain_id=31337, address=contract.address, abi_path=abi_path,
                            deploy_block=chain.w3.eth.block_number, tx_hash="0x" + "00" * 32,
                            config=default_rounds_config(chain.accounts))
    client = chain.accounts[6]

    def mined_revert(round_: int) -> str:
        # An explicit gas limit skips estimation, so the node mines the call and it reverts on chain.
        call = contract.contract.functions.submitUpdate(round_, 0x55, b"\x01" * 32).build_transaction(
            {"from": client.address, "gas": 200_000, "nonce": chain.w3.eth.get_transaction_count(client.address)})
        tx_hash = chain.w3.eth.send_raw_transaction(client.sign_transaction(call).raw_transaction)
        assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
        return "0x" + bytes(tx_hash).hex()

    view = FederationView(chain.url, deployment)
    wrong_round = mined_revert(99)
    contract.start_training(chain.accounts[0], cid_from_parts(0x55, b"\x02" * 32), 1)
    chain.increase_time(601)
    late = mined_revert(1)  # reverts only on the state of its own block: the deadline just passed
    blocks_before = chain.w3.eth.block_number

    detail = view.transaction(wrong_round)
    assert detail.status == 0 and detail.function == "submitUpdate"
    assert detail.revert.startswith("RoundWrongState(round=99")
    assert view.transaction(late).revert.startswith("RoundDeadlinePassed(round=1")
    assert chain.w3.eth.block_number == blocks_before  # replayed with eth_call: nothing sent


def test_share_checks_and_complaints_show_on_the_round_and_transaction_pages(chain, deploy, rounds_artifact,
                                                                           tmp_path) -> None:
    import json
    from dataclasses import replace

    from fedtss.chain import Deployment
    from tests.fixtures.anvil import default_rounds_config

    contract = deploy(check_period=60)
    abi_path = tmp_path / "abi.json"
    abi_path.write_text(json.dumps(rounds_artifact.abi), encoding="utf-8")
    deployment = Deployment(chain_id=31337, address=contract.address, abi_path=abi_path,
                            deploy_block=chain.w3.eth.block_number, tx_hash="0x" + "00" * 32,
                            config=replace(default_rounds_config(chain.accounts), check_period=60))
    members, clients = chain.accounts[1:6], chain.accounts[6:16]
    contract.start_training(chain.accounts[0], cid_from_parts(0x55, b"\x02" * 32), 1)
    for i, client in enumerate(clients):
        contract.submit_update(client, 1, cid_from_parts(0x55, bytes([i + 1]) * 32))
    contract.submit_checks(members[0], 1, bytes(CHECK_BYTES * 10))
    complained = contract.submit_complaints(members[1], 1, [(3, b"\x07" * 32)])

    view = FederationView(chain.url, deployment)
    assert view.overview().check_period == 60
    with serve_app(create_app(view, poll_seconds=60)) as url, httpx.Client(base_url=url) as http:
        round_page = http.get("/rounds/1").text
        tx_page = http.get(f"/tx/0x{bytes(complained['transactionHash']).hex()}").text
    assert "Share checks (1) and complaints (1)" in round_page and "10 clients checked" in round_page
    assert "ComplaintsSubmitted" in tx_page and "0x" + "07" * 32 in tx_page  # public on chain: shown


# ------------------------------------------------------------------------ hostile input
#
# Anyone with a funded account can have any bytes mined as a call to the contract (it reverts,
# but it is a transaction on every page that lists it), and anyone who reaches the explorer can
# type any URL. Neither may make a page answer 5xx: an undecodable call is shown as such with
# its raw data, a parameter that names nothing gets a 400 page saying what was wrong.


def _selector(abi: list[dict], name: str) -> bytes:
    return function_abi_to_4byte_selector(next(item for item in abi if item.get("name") == name))


def _odd_calldata(abi: list[dict]) -> dict[str, bytes]:
    submit = _selector(abi, "submitUpdate")
    round_1, codec, digest = (1).to_bytes(32, "big"), (0x55).to_bytes(32, "big"), b"\x01" * 32
    return {
        "truncated arguments": submit + round_1 + codec[:10],
        "selector only": _selector(abi, "proposeModel"),
        "garbled arguments": submit + round_1 + b"\xff" * 24 + codec[24:] + digest,  # a uint64 with dirty bits
        "unknown selector": bytes.fromhex("deadbeef") + bytes(64),
        "shorter than a selector": b"\x12\x34",
    }


@dataclass(frozen=True)
class MinedCall:
    data: bytes
    tx_hash: str
    block: int


@dataclass(frozen=True)
class HostileChain:
    """A two-round federation on its own anvil, plus odd calls from an account with no role."""

    fed: TwoRoundFederation
    view: FederationView
    url: str
    sender: str
    calls: dict[str, MinedCall]


def _mine_raw_call(fed: TwoRoundFederation, sender: LocalAccount, data: bytes) -> MinedCall:
    """Sign and send ``data`` to the contract as it is; an explicit gas limit skips estimation,
    so the node mines it (and it reverts on chain) as any node would for anyone."""
    w3 = fed.anvil.w3
    tx = {"to": fed.contract.address, "data": data, "value": 0, "gas": 100_000, "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(sender.address), "maxFeePerGas": 2 * w3.eth.gas_price + 10**9,
          "maxPriorityFeePerGas": 10**9}
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 0  # the contract refuses every one of them
    return MinedCall(data, "0x" + bytes(tx_hash).hex(), receipt["blockNumber"])


@pytest.fixture(scope="module")
def hostile_chain(rounds_artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileChain]:
    """Its own anvil, so the session's chain and the other tests' pages are left as they were."""
    node = start_anvil(accounts=10)
    try:
        fed = run_two_rounds(deploy_federation(AnvilNode(node, dev_accounts(10)), rounds_artifact,
                                               tmp_path_factory.mktemp("hostile") / "run"))
        sender = fed.anvil.accounts[5]  # funded, and nothing in the federation
        calls = {name: _mine_raw_call(fed, sender, data) for name, data in _odd_calldata(rounds_artifact.abi).items()}
        view = FederationView(node.url, fed.deployment, run_dir=fed.run_dir)
        with serve_app(create_app(view, report_path=fed.run_dir / "report.json", store=fed.store,
                                  poll_seconds=0.5)) as url:
            yield HostileChain(fed, view, url, sender.address, calls)
    finally:
        node.stop()


ODD_CALLS = ("truncated arguments", "selector only", "garbled arguments", "unknown selector", "shorter than a selector")


@pytest.mark.parametrize("name", ODD_CALLS)
def test_a_mined_call_with_undecodable_calldata_is_shown_with_its_raw_data_on_every_page(hostile_chain,
                                                                                       name: str) -> None:
    call = hostile_chain.calls[name]
    with httpx.Client(base_url=hostile_chain.url) as http:
        tx = http.get(f"/tx/{call.tx_hash}")
        assert tx.status_code == 200
        assert "undecodable call" in tx.text
        assert f'id="tx-input">0x{call.data.hex()}<' in tx.text, "the page does not show the raw calldata"
        for path in (f"/blocks/{call.block}", "/blocks", f"/address/{hostile_chain.sender}"):
            page = http.get(path)
            assert page.status_code == 200, f"{path} answered {page.status_code}"
            assert call.tx_hash in page.text and "undecodable call" in page.text, path
        assert http.get("/rounds/1").status_code == 200


def test_any_calldata_sent_to_the_contract_is_described_and_never_raises(hostile_chain) -> None:
    """Random bytes, alone or after each of the contract's selectors: decoding says what it
    found or why it found nothing, and raises nothing at all."""
    view = hostile_chain.view
    abi = hostile_chain.fed.contract.contract.abi
    selectors = [function_abi_to_4byte_selector(item) for item in abi if item["type"] == "function"]
    calldata = st.one_of(st.binary(max_size=300),
                         st.builds(bytes.__add__, st.sampled_from(selectors), st.binary(max_size=300)))

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=calldata)
    def check(data: bytes) -> None:
        line = view.describe_call(view.contract.address, data)
        decoded = view.contract.decode_call(data)  # the one decoder every page uses
        assert decoded.data == data
        assert (decoded.problem is None) == (decoded.args is not None)
        assert ("undecodable call" in line) == (decoded.problem is not None)

    check()


# (path, what the 400 page must say)
BAD_INPUT = [
    ("/blocks/²", "is not a block number"),
    ("/blocks/-1", "is not a block number"),
    ("/blocks/%20", "is not a block number"),
    ("/blocks/" + "9" * 5000, "too large for a block number"),
    ("/blocks/18446744073709551616", "too large for a block number"),
    ("/blocks/0x12zz", "is not a block hash"),
    ("/rounds/²", "is not a round number"),
    ("/rounds/" + "1" * 5000, "too large for a round number"),
    ("/rounds/-1", "is not a round number"),
    ("/rounds/0", "they start at 1"),
    ("/rounds/0x10", "is not a round number"),
    ("/rounds/%F0%9F%92%A5", "is not a round number"),
    ("/tx/²", "is not a transaction hash"),
    ("/tx/0x1234", "is not a transaction hash"),
    ("/tx/0x" + "ab" * 32 + "%0A", "is not a transaction hash"),
    ("/address/²", "is not an address"),
    ("/address/0x" + "zz" * 20, "is not an address"),
    ("/cid/²", "is not a CID"),
    ("/cid/b" + "a" * 5000, "is not a CID"),
    ("/model/²", "is not a CID"),
    ("/model/b" + "a" * 5000 + ".pt", "is not a CID"),
    ("/search?q=²", "is not a round number"),
    ("/search?q=block%20²", "is not a round number"),
    ("/search?q=round%20³", "is not a round number"),
    ("/search?q=%23" + "9" * 100, "is not a round number"),
    ("/search?q=" + "9" * 5000, "characters long"),
    ("/search?q=-1", "is not a round number"),
    ("/search?q=0xzz", "is not a round number"),
    ("/search?q=%00", "is not a round number"),
]


@pytest.mark.parametrize(("path", "message"), BAD_INPUT,
                         ids=[p if len(p) < 50 else f"{p[:20]}...({len(p)} chars)" for p, _ in BAD_INPUT])
def test_a_parameter_that_names_nothing_answers_400_saying_what_was_wrong(hostile_chain, path: str,
                                                                          message: str) -> None:
    with httpx.Client(base_url=hostile_chain.url) as http:
        page = http.get(path)
        partial = http.get(path, headers={PARTIAL_HEADER: "1"})
    assert page.status_code == 400, f"{path} answered {page.status_code}"
    assert "<h1>Bad request</h1>" in page.text and message in page.text
    assert partial.status_code == 400 and "<html" not in partial.text and message in partial.text


@pytest.mark.parametrize("path", ["/rounds/99", "/rounds/" + str(2**256 - 1), "/blocks/18446744073709551615",
                                  "/blocks/0x" + "ab" * 32, "/tx/0x" + "ab" * 32, "/no/such/page"])
def test_a_well_formed_parameter_naming_nothing_on_this_chain_answers_a_404_page(hostile_chain, path: str) -> None:
    page = httpx.get(hostile_chain.url + path)
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text


_ODD_TEXT = st.one_of(
    st.text(max_size=90),
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=90),  # '²', '٣', 'Ⅻ'
    st.text("0123456789²³¹٣", min_size=1, max_size=90),  # str.isdigit() says yes, int() may not
    st.text("0123456789", min_size=70, max_size=6000),
    st.builds(str.__add__, st.sampled_from(["0x", "-", "block ", "#", "round ", " "]),
              st.text("0123456789abcdefxyz²\n", max_size=90)),
)


@pytest.mark.parametrize("route", ["/rounds/{}", "/blocks/{}", "/tx/{}", "/address/{}", "/cid/{}", "/model/{}",
                                   "/model/{}.pt", "/search?q={}"])
def test_no_path_or_query_parameter_makes_a_page_answer_5xx(hostile_chain, route: str) -> None:
    with httpx.Client(base_url=hostile_chain.url) as http:

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(text=_ODD_TEXT)
        @example(text="²")
        @example(text="9" * 5000)
        @example(text="1" + "0" * 20)
        def check(text: str) -> None:
            page = http.get(route.format(quote(text, safe="")))
            assert page.status_code in (200, 303, 307, 400, 404), f"{route.format(text)[:80]!r}: {page.status_code}"
            if page.status_code == 400:
                assert 'id="bad-request"' in page.text

        check()


@pytest.mark.parametrize("text", ["²", "block ²", "round " + "9" * 5000, "#-1", "٣", "9" * 79],
                         ids=["superscript", "block superscript", "round 5000 digits", "negative block",
                              "arabic-indic digit", "79 digits"])
def test_classify_query_says_unknown_for_a_number_not_written_in_at_most_78_ascii_digits(text: str) -> None:
    assert classify_query(text, current_round=3) == ("unknown", text)


@settings(max_examples=300, deadline=None)
@given(text=_ODD_TEXT)
@example(text="²")
def test_classify_query_never_raises(text: str) -> None:
    kind, value = classify_query(text, current_round=3)
    assert kind in ("round", "block", "hash", "address", "cid", "unknown")


def test_browser_shows_undecodable_calls_with_their_raw_data_and_bad_input_with_what_was_wrong(
        browser, hostile_chain) -> None:
    url, call = hostile_chain.url, hostile_chain.calls["truncated arguments"]
    browser.get(f"{url}/tx/{call.tx_hash}")
    assert _text(browser, "#tx-function") == "undecodable call"
    assert "submitUpdate" in _text(browser, "#tx-undecodable")
    assert _text(browser, "#tx-input") == "0x" + call.data.hex()
    assert _text(browser, "#tx-status").startswith("reverted")
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "explorer-undecodable-call.png"))
    for path in (f"/blocks/{call.block}", "/blocks", f"/address/{hostile_chain.sender}"):
        browser.get(url + path)
        assert "undecodable call: submitUpdate(…)" in _text(browser, "#content"), path

    browser.get(url + "/blocks/²")
    assert _text(browser, "h1") == "Bad request"
    assert browser.save_screenshot(str(ARTIFACTS / "explorer-bad-request.png"))
    assert "“²” is not a block number" in _text(browser, "#bad-request")
    browser.get(url + "/rounds/" + "1" * 5000)
    assert "too large for a round number" in _text(browser, "#bad-request")
    _search(browser, url, "²")
    _wait(browser, lambda b: "/search" in b.current_url, "the search did not answer")
    assert "is not a round number" in _text(browser, "#bad-request")
    _search(browser, url, "1")  # and a good query still finds its round
    _wait(browser, lambda b: b.current_url.endswith("/rounds/1"), "search did not open round 1")
