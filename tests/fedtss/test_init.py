"""The package re-exports the protocol API, and loads it only when a name is first used."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import fedtss


def test_every_exported_name_is_the_object_its_module_defines():
    for name in fedtss.__all__:
        module = importlib.import_module(fedtss._LAZY.get(name, "fedtss.errors"))
        assert getattr(fedtss, name) is getattr(module, name), name
    assert {"share_vector", "seal_share", "open_share", "quantize_update", "compute_cid",
            "parse_manifest", "InconsistentShares"} <= set(fedtss.__all__)
    assert set(fedtss._LAZY) <= set(dir(fedtss))


def test_importing_fedtss_loads_neither_numba_nor_web3_nor_torch():
    probe = "import sys, fedtss; print(sorted(m for m in ('numba', 'web3', 'torch', 'numpy', 'fedtss.shamir') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_first_use_of_a_name_imports_its_module():
    probe = "import sys, fedtss; fedtss.share_vector; print('numba' in sys.modules, 'fedtss.shamir' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == ["True", "True"]


def test_an_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        fedtss.no_such_thing  # noqa: B018
