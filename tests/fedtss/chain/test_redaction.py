"""Node URLs' API keys stay out of every log line: web3.py's, urllib3's and our own."""

from __future__ import annotations

import logging

import pytest

from fedtss.chain import connect, redact_node_urls
from fedtss.chain.redaction import REDACTED, display_url, redact_urls
from fedtss.errors import ChainError

SECRET_URL = "http://127.0.0.1:9/v3/secret-api-key"  # port 9 (discard): nothing listens


def test_a_failed_connect_logs_and_raises_without_the_url_path(caplog):
    with caplog.at_level(logging.DEBUG), pytest.raises(ChainError) as info:
        connect(SECRET_URL, timeout=1)
    assert "http://127.0.0.1:9" in str(info.value)
    assert "secret-api-key" not in str(info.value)
    assert any("127.0.0.1:9" in r.getMessage() for r in caplog.records if r.name.startswith("web3"))
    assert "secret-api-key" not in caplog.text


def test_web3_provider_lines_are_cut_to_scheme_host_and_port(caplog):
    redact_node_urls()
    with caplog.at_level(logging.INFO):
        # web3.py's persistent providers log this at INFO, for any URL (none registered here)
        logging.getLogger("web3.providers.WebSocketProvider").info(
            "Connecting to: %s", "wss://user:pw@node.example:8546/ws/v3/unregistered-key")
    assert caplog.records[-1].getMessage() == "Connecting to: wss://node.example:8546"


def test_a_registered_urls_bare_path_is_scrubbed_from_any_logger(caplog):
    redact_node_urls("https://node.example/v3/bare-path-key?token=query-key")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3.connectionpool").debug(
            '%s://%s:%s "%s %s %s" %s %s', "https", "node.example", 443, "POST", "/v3/bare-path-key", "HTTP/1.1", 200, 5)
        logging.getLogger("fedtss.agents").info("detail=%s", "got token=query-key back")
    assert "bare-path-key" not in caplog.text and "query-key" not in caplog.text
    assert f'"POST {REDACTED} HTTP/1.1"' in caplog.text


def test_urls_in_traceback_text_are_cut_too(caplog):
    redact_node_urls()
    with caplog.at_level(logging.INFO):
        try:
            raise OSError("Could not connect to: https://node.example/v3/traceback-key.")
        except OSError:
            logging.getLogger("web3.providers.persistent").info("retrying", exc_info=True)
    assert "traceback-key" not in caplog.text
    assert "Could not connect to: https://node.example." in caplog.text


def test_our_own_log_lines_keep_urls_that_hold_no_registered_secret(caplog):
    redact_node_urls()
    with caplog.at_level(logging.INFO):
        logging.getLogger("fedtss.storage").info("store at http://127.0.0.1:5001/api/v0")
    assert caplog.records[-1].getMessage() == "store at http://127.0.0.1:5001/api/v0"


def test_redact_urls_keeps_host_port_and_surrounding_punctuation():
    assert display_url("https://a:b@Node.Example:8545/x?y=1") == "https://node.example:8545"
    assert redact_urls("(see https://node.example/v3/k), then ws://h:1/p.") == "(see https://node.example), then ws://h:1."
    assert redact_urls("POST /v3/k HTTP/1.1", "https://node.example/v3/k") == f"POST {REDACTED} HTTP/1.1"
