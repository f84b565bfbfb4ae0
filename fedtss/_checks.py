"""Small validators shared by quantize, sealing and formats.

Each helper takes the error class to raise, so a configuration value fails with
:class:`~fedtss.errors.ConfigError` and a parsed byte with :class:`~fedtss.errors.FormatError`,
both with a message naming the field.
"""

from __future__ import annotations

import math
import re

from fedtss.errors import FedTSSError

__all__ = ["FIELD_PRIME", "UINT256_MAX", "require_int", "require_positive_float", "normalize_address"]

UINT256_MAX = 2**256 - 1
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def require_int(
    value: object, name: str, *, low: int, high: int, error: type[FedTSSError]
) -> int:
    """Return ``value`` if it is an int (not a bool) in ``[low, high]``, else raise ``error``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise error(f"{name} must be in [{low}, {high}], got {value}")
    return value


def require_positive_float(value: object, name: str, *, error: type[FedTSSError]) -> float:
    """Return ``value`` as a float if it is a finite real number > 0, else raise ``error``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{name} must be a number, got {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:  # an int beyond float range, e.g. 400 digits in a parsed manifest
        bits = value.bit_length()
        raise error(f"{name} must be finite and > 0, got an integer of {bits} bits") from None
    if not (math.isfinite(result) and result > 0):
        raise error(f"{name} must be finite and > 0, got {value!r}")
    return result


def normalize_address(value: object, name: str, *, error: type[FedTSSError]) -> str:
    """Return an Ethereum address as lowercase ``0x`` + 40 hex digits.

    Checksum-insensitive on purpose: the protocol core has no keccak, and the chain layer
    checks EIP-55 where addresses are typed in by people.
    """
    if not isinstance(value, str) or _ADDRESS.fullmatch(value) is None:
        raise error(f"{name} must be a 0x-prefixed 20-byte hex address, got {value!r:.60}")
    return value.lower()

#: The field modulus p = 2**61 - 1. It must equal ``fedtss.field.MODULUS`` (owned by the field
#: module); it is repeated here so that sealing, which needs these checks, does not import
#: numpy. tests/fedtss/test_quantize.py checks that they match.
FIELD_PRIME = 2**61 - 1
