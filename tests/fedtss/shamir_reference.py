"""A slow, independent pure-Python Shamir implementation: the reference for the kernels.

It rebuilds the coefficient stream from the construction documented in
:mod:`fedtss.randomness` (HMAC-SHA256 subkey, AES-256-CTR from counter 0, little-endian words,
low 61 bits, per-position rejection) using only ``cryptography`` and Python ints, then
evaluates each polynomial directly. ``python -m tests.fedtss.shamir_reference`` rewrites
``tests/vectors/shamir.json``, whose numbers are decimal strings (exact in every JSON reader).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

P = 2**61 - 1
COEFFICIENTS_LABEL = b"fedtss/shamir/coefficients/v1"
VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "shamir.json"


def stream_words(subkey: bytes, count: int) -> list[int]:
    """The first ``count`` words of the AES-256-CTR stream under ``subkey``."""
    encryptor = Cipher(algorithms.AES(subkey), modes.CTR(bytes(16))).encryptor()
    data = encryptor.update(bytes(8 * count))
    return [int.from_bytes(data[8 * i : 8 * i + 8], "little") for i in range(count)]


def field_element(subkey: bytes, position: int, word: int) -> int:
    """The field element at stream ``position``, rejecting the one value equal to p."""
    if word & P != P:
        return word & P
    replacement = hmac.new(subkey, b"reject" + position.to_bytes(8, "little"), hashlib.sha256)
    index = 1
    while True:
        candidate = stream_words(replacement.digest(), index)[-1]
        if candidate & P != P:
            return candidate & P
        index += 1


def share_vector(secret: list[int], threshold: int, holders: int, key: bytes) -> list[list[int]]:
    """Shares as lists of ints: row j - 1 is f(j) for each coordinate."""
    d = len(secret)
    subkey = hmac.new(key, COEFFICIENTS_LABEL, hashlib.sha256).digest()
    words = stream_words(subkey, (threshold - 1) * d)
    coefficients = [
        [field_element(subkey, (k - 1) * d + i, words[(k - 1) * d + i]) for i in range(d)]
        for k in range(1, threshold)
    ]
    return [
        [
            (secret[i] + sum(coefficients[k - 1][i] * x**k for k in range(1, threshold))) % P
            for i in range(d)
        ]
        for x in range(1, holders + 1)
    ]


def reconstruct_at_zero(shares: dict[int, list[int]]) -> list[int]:
    """Lagrange interpolation at 0 with Python ints."""
    xs = sorted(shares)
    d = len(shares[xs[0]])
    result = [0] * d
    for xj in xs:
        weight = 1
        for xm in xs:
            if xm != xj:
                weight = weight * xm * pow(xm - xj, -1, P) % P
        for i in range(d):
            result[i] = (result[i] + weight * shares[xj][i]) % P
    return result


_CASES = [
    # (threshold, holders, d, secret generator)
    (2, 2, 1, lambda d: [0]),
    (2, 3, 4, lambda d: [0, 1, P - 1, 2**60]),
    (3, 5, 7, lambda d: [(i * 0x9E3779B97F4A7C15) % P for i in range(d)]),
    (6, 10, 13, lambda d: [P - 1 - i for i in range(d)]),
    (11, 20, 5, lambda d: [i**7 % P for i in range(d)]),
    (4, 255, 2, lambda d: [123456789, P - 2]),
]


def build_vectors() -> list[dict[str, object]]:
    """The test vectors, from fixed keys (SHA-256 of the case number)."""
    vectors = []
    for number, (threshold, holders, d, make_secret) in enumerate(_CASES):
        key = hashlib.sha256(f"fedtss shamir test vector {number}".encode()).digest()
        secret = make_secret(d)
        shares = share_vector(secret, threshold, holders, key)
        vectors.append(
            {
                "threshold": threshold,
                "holders": holders,
                "key": key.hex(),
                "secret": [str(v) for v in secret],
                "shares": [[str(v) for v in row] for row in shares],
            }
        )
    return vectors


def main() -> int:
    VECTORS_PATH.write_text(json.dumps(build_vectors(), indent=1) + "\n")
    print(f"wrote {VECTORS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
