"""The explorer after a chain reorganization, and with ``confirmations``, on a real anvil.

Each test runs on its own anvil (``anvil_reorg`` rewrites the chain, which the session's
federation must not see). ``reorganize_from`` (tests/fixtures/reorg.py) replaces blocks at the
same height: the explorer's caches (events, receipts, block times) must follow the new branch,
and an open page must redraw although the head's number did not change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fedtss.chain.devnode import dev_accounts, start_anvil
from fedtss.cid import cid_from_parts
from orchestration.explorer.app import create_app
from orchestration.explorer.chainview import FederationView
from tests.fixtures.anvil import AnvilNode
from tests.fixtures.browser import serve_app
from tests.fixtures.federation import CLIENTS, TwoRoundFederation, deploy_federation
from tests.fixtures.reorg import reorganize_from

RAW = 0x55


@dataclass(frozen=True)
class OpenRound:
    """Round 1 opened on a federation of its own anvil; ``submit`` sends one client's update."""

    fed: TwoRoundFederation

    @property
    def w3(self):
        return self.fed.anvil.w3

    def start(self) -> int:
        receipt = self.fed.contract.start_training(self.fed.anvil.accounts[0], cid_from_parts(RAW, b"\x01" * 32), 1)
        return receipt["blockNumber"]

    def submit(self, client: int) -> tuple[str, int]:
        """``(tx hash, block)`` of client ``CLIENTS[client]``'s update to round 1."""
        account = self.fed.anvil.accounts[CLIENTS[client]]
        receipt = self.fed.contract.submit_update(account, 1, cid_from_parts(RAW, bytes([0x10 + client]) * 32))
        return "0x" + bytes(receipt["transactionHash"]).hex(), receipt["blockNumber"]

    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])

    def block_hash(self, number: int) -> str:
        return "0x" + bytes(self.w3.eth.get_block(number)["hash"]).hex()


@pytest.fixture
def open_round(rounds_artifact, tmp_path) -> Iterator[OpenRound]:
    node = start_anvil(accounts=10)
    try:
        yield OpenRound(deploy_federation(AnvilNode(node, dev_accounts(10)), rounds_artifact, tmp_path / "run"))
    finally:
        node.stop()


def _submitters(page: str) -> list[str]:
    return re.findall(r'<tr data-client="(0x[0-9a-fA-F]{40})">', page)


def _explorer(fed: TwoRoundFederation, *, confirmations: int = 0, poll_seconds: float = 60):
    options = {"confirmations": confirmations} if confirmations else {}  # the default: 0
    view = FederationView(fed.anvil.url, fed.deployment, **options)
    return serve_app(create_app(view, poll_seconds=poll_seconds))


# ------------------------------------------------------------------------ reorganizations


def test_after_a_reorganization_at_the_same_height_the_pages_show_the_new_branch(open_round) -> None:
    """The update that closed collection is lost with its block: the round page, the block list,
    the lost transaction's page and /api/head all show the branch that replaced it."""
    open_round.start()
    first, _ = open_round.submit(0)
    second, second_block = open_round.submit(1)
    closing, head = open_round.submit(2)  # the third update closes collection (target 3)
    accounts = open_round.fed.anvil.accounts
    with _explorer(open_round.fed) as url, httpx.Client(base_url=url) as http:
        before = http.get("/rounds/1")
        assert _submitters(before.text) == [accounts[c].address for c in CLIENTS[:3]]
        assert "collection closed" in before.text and "state-aggregating" in before.text
        assert http.get(f"/tx/{closing}").status_code == 200
        lost_hash = open_round.block_hash(head)
        http.get("/blocks")  # the block list and its block times are read too

        assert reorganize_from(open_round.w3, second_block) == head  # same height, new branch
        new_hash = open_round.block_hash(head)
        assert new_hash != lost_hash

        after = http.get("/rounds/1")
        assert after.status_code == 200
        assert _submitters(after.text) == [accounts[c].address for c in CLIENTS[:2]]
        assert "collection closed" not in after.text and "state-collecting" in after.text
        assert closing not in after.text
        assert http.get(f"/tx/{closing}").status_code == 404
        assert http.get(f"/tx/{second}").status_code == 200  # re-mined in the new branch's first block
        blocks = http.get("/blocks").text
        assert new_hash in blocks and lost_hash not in blocks and closing not in blocks
        assert http.get("/api/head").json()["head_hash"] == new_hash
        assert first in http.get("/rounds/1").text


def test_an_open_page_redraws_after_a_reorganization_at_the_same_height(open_round, browser) -> None:
    """The page script compares the head's hash: the head's number alone did not change."""
    open_round.start()
    open_round.submit(0)
    _, second_block = open_round.submit(1)
    open_round.submit(2)
    with _explorer(open_round.fed, poll_seconds=0.3) as url:
        browser.get(url + "/rounds/1")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#submissions tbody tr")) == 3
        browser.execute_script("window.__notReloaded = true;")
        reorganize_from(open_round.w3, second_block)
        WebDriverWait(browser, 20).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, "#submissions tbody tr")) == 2,
            "the round page kept showing the update lost with the old branch")
        assert browser.execute_script("return window.__notReloaded === true;")


# ---------------------------------------------------------------------------- confirmations


def test_with_confirmations_rounds_count_only_blocks_that_deep_and_newer_blocks_are_marked(open_round) -> None:
    start_block = open_round.start()
    first, first_block = open_round.submit(0)
    second, second_block = open_round.submit(1)  # head: 2 blocks above the opening one
    accounts = open_round.fed.anvil.accounts
    with _explorer(open_round.fed, confirmations=2) as url, httpx.Client(base_url=url) as http:
        page = http.get("/rounds/1").text
        assert "2 confirmations: rounds count blocks up to head − 2" in page
        assert _submitters(page) == [] and "No client has submitted yet" in page
        overview = http.get("/").text
        assert 'data-round="1"' in overview and f'<a href="/blocks/{start_block}">' in overview
        blocks = http.get("/blocks").text
        for number, marked in ((second_block, True), (first_block, True), (start_block, False)):
            row = re.search(rf'<th scope="row"><a href="/blocks/{number}">#{number}</a>(.*?)</th>', blocks)
            assert ("unconfirmed" in row.group(1)) is marked, number
        assert "unconfirmed" in http.get(f"/tx/{second}").text
        assert "unconfirmed" in http.get(f"/blocks/{first_block}").text

        open_round.mine(2)  # now both updates are 2 blocks deep
        page = http.get("/rounds/1").text
        assert _submitters(page) == [accounts[c].address for c in CLIENTS[:2]]
        assert 'class="unconfirmed"' not in http.get(f"/tx/{second}").text
        assert first in page


def test_a_reorganization_shallower_than_the_confirmations_never_shows(open_round) -> None:
    open_round.start()
    open_round.submit(0)
    _, second_block = open_round.submit(1)
    closing, _ = open_round.submit(2)
    open_round.mine(1)
    with _explorer(open_round.fed, confirmations=3) as url, httpx.Client(base_url=url) as http:
        shown = _submitters(http.get("/rounds/1").text)
        assert len(shown) == 1  # the update of block head - 3 only
        reorganize_from(open_round.w3, second_block)  # replaces 3 blocks, all unconfirmed
        assert _submitters(http.get("/rounds/1").text) == shown
        assert http.get(f"/tx/{closing}").status_code == 404


def test_confirmations_out_of_range_are_refused_with_the_allowed_range(open_round) -> None:
    from fedtss.errors import ConfigError

    for bad in (-1, 1001, True):
        with pytest.raises(ConfigError, match=r"confirmations must be an integer in \[0, 1000\]"):
            FederationView(open_round.fed.anvil.url, open_round.fed.deployment, confirmations=bad)
