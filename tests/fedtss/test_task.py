"""Settings, the one value fedtss passes into a task (fedtss.task)."""

from __future__ import annotations

from types import ModuleType

import pytest

from fedtss.errors import ConfigError
from fedtss.task import Settings, Task


def _with(**options: str) -> Settings:
    return Settings(options=options)


def test_defaults() -> None:
    settings = Settings()
    assert (settings.epochs, settings.lr, settings.batch_size, settings.seed, settings.round) == (5, 0.05, 16, 0, 0)
    assert dict(settings.options) == {}


@pytest.mark.parametrize("raw, default, expected", [
    ("3", 1, 3),
    (" -2 ", 1, -2),
    ("0.5", 0.9, 0.5),
    ("1e-3", 0.9, 0.001),
    ("7", 0.9, 7.0),
    ("adam", "sgd", "adam"),
    ("", "sgd", ""),
])
def test_get_converts_to_the_type_of_the_default(raw: str, default, expected) -> None:
    value = _with(key=raw).get("key", default)
    assert value == expected and type(value) is type(default)


@pytest.mark.parametrize("raw, expected", [
    ("true", True), ("True", True), ("1", True), ("yes", True), (" on ", True),
    ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False),
])
def test_get_reads_booleans(raw: str, expected: bool) -> None:
    assert _with(shuffle=raw).get("shuffle", not expected) is expected


def test_get_returns_the_default_when_unset() -> None:
    settings = _with(other="1")
    assert settings.get("momentum", 0.9) == 0.9
    assert settings.get("nesterov", False) is False
    assert settings.get("optimizer", "sgd") == "sgd"


@pytest.mark.parametrize("raw, default, kind", [
    ("1.5", 1, "int"),
    ("many", 1, "int"),
    ("fast", 0.9, "float"),
    ("maybe", True, "bool"),
    ("", 0.9, "float"),
])
def test_a_value_that_does_not_convert_is_a_config_error_naming_the_key(raw: str, default, kind: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _with(momentum=raw).get("momentum", default)
    message = str(excinfo.value)
    assert message.startswith(f"task setting momentum = {raw!r} is not a {kind}")
    assert f"as its default {default!r} is" in message


@pytest.mark.parametrize("kwargs, field", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -0.1}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"lr": True}, "lr"),
])
def test_out_of_range_hyper_parameters_are_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field} must be"):
        Settings(**kwargs)


@pytest.mark.parametrize("options", [{"alpha": 0.5}, {1: "x"}])
def test_options_must_be_strings(options: dict) -> None:
    with pytest.raises(ConfigError, match="task settings are key = value strings"):
        Settings(options=options)


def test_to_json_holds_every_field() -> None:
    settings = Settings(epochs=2, lr=0.1, batch_size=8, seed=9, round=3, options={"alpha": "0.2"})
    assert settings.to_json() == {"epochs": 2, "lr": 0.1, "batch_size": 8, "seed": 9, "round": 3,
                                  "options": {"alpha": "0.2"}}


def test_a_module_with_the_four_functions_is_a_task() -> None:
    module = ModuleType("user_task")
    for name in ("model", "load_data", "train", "evaluate"):
        setattr(module, name, lambda *args: None)
    assert isinstance(module, Task)
    del module.evaluate
    assert not isinstance(module, Task)
