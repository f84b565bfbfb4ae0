"""The contract documents itself: NatSpec on every external function and event, read back from
the compiler's metadata (the generated docs are the spec users and auditors read)."""

from __future__ import annotations

import json


def _docs(artifact) -> tuple[dict, dict]:
    output = json.loads(artifact.metadata)["output"]
    return output["userdoc"], output["devdoc"]


def _signature(item: dict) -> str:
    return f"{item['name']}({','.join(i['type'] if i['type'] != 'tuple' else _tuple(i) for i in item['inputs'])})"


def _tuple(item: dict) -> str:
    return "(" + ",".join(c["type"] for c in item["components"]) + ")"


def test_every_external_function_has_a_notice_and_every_transaction_documents_each_parameter(rounds_artifact):
    userdoc, devdoc = _docs(rounds_artifact)
    functions = [i for i in rounds_artifact.abi if i["type"] == "function"]
    assert functions
    for item in functions:
        signature = _signature(item)
        assert userdoc["methods"].get(signature, {}).get("notice"), f"{signature} has no @notice"
        if item["stateMutability"] not in ("view", "pure"):
            documented = devdoc["methods"].get(signature, {}).get("params", {})
            assert set(documented) == {i["name"] for i in item["inputs"]}, f"{signature} lacks @param tags"


def test_every_event_has_a_notice_and_documents_each_field(rounds_artifact):
    userdoc, devdoc = _docs(rounds_artifact)
    for item in (i for i in rounds_artifact.abi if i["type"] == "event"):
        signature = _signature(item)
        assert userdoc["events"].get(signature, {}).get("notice"), f"{signature} has no @notice"
        documented = devdoc["events"].get(signature, {}).get("params", {})
        assert set(documented) == {i["name"] for i in item["inputs"]}, f"{signature} lacks @param tags"


#: The contract's components, as OpenZeppelin prefixes its errors (``GovernorUnexpectedProposalState``):
#: deployment configuration, who may call, the training run, one round.
ERROR_COMPONENTS = ("Config", "Access", "Training", "Round")


def test_every_custom_error_names_its_component_first(rounds_artifact):
    errors = [i["name"] for i in rounds_artifact.abi if i["type"] == "error"]
    assert errors
    unprefixed = [name for name in errors if not name.startswith(ERROR_COMPONENTS)]
    assert unprefixed == [], f"errors without a component prefix {ERROR_COMPONENTS}: {unprefixed}"
