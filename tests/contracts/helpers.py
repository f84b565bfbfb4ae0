"""What the contract tests share: expecting a named custom error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from fedtss.errors import ContractRevert


@contextmanager
def reverts(name: str, **expected: object) -> Iterator[None]:
    """Expect a ContractRevert named ``name`` whose args include ``expected`` (arrays as tuples)."""
    with pytest.raises(ContractRevert) as info:
        yield
    assert info.value.name == name, str(info.value)
    for key, value in expected.items():
        assert info.value.args_by_name[key] == value, str(info.value)


@contextmanager
def reverts_exactly(name: str, **expected: object) -> Iterator[None]:
    """Expect a ContractRevert named ``name`` whose args are exactly ``expected``."""
    with pytest.raises(ContractRevert) as info:
        yield
    assert info.value.name == name, str(info.value)
    assert info.value.args_by_name == expected, str(info.value)
