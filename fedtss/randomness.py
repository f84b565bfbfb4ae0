"""Keyed CSPRNG streams: the random polynomial coefficients and projection vectors.

Shamir's privacy needs every coefficient drawn uniformly by a cryptographically secure
generator (numpy's default generator is not one). The caller passes a fresh 32-byte key
(from ``os.urandom``); this module only expands it, so the protocol functions stay pure and
tests can pin their output.

Construction (documented so a second implementation can reproduce it bit for bit):

* ``subkey = HMAC-SHA256(key, label)`` separates uses of one key (``label`` is e.g.
  ``b"fedtss/shamir/coefficients/v1"``).
* The stream is AES-256-CTR under ``subkey`` with the 16-byte initial counter block 0
  (big-endian, incremented per 16-byte block), i.e. the encryption of zero bytes. Word ``w``
  is bytes ``8w .. 8w+8`` read as little-endian uint64, so any word range can be produced
  directly (random access, chunked generation with bounded memory). The key is fresh for
  every call, so a fixed initial counter never repeats a (key, counter) pair.
  AES-CTR was measured against ChaCha20 on this machine (AES-NI/VAES): ~8 GB/s into a
  pre-touched buffer, several times the cost of nothing else in sharing.
* A field element is the low 61 bits of a word, ``w & (2**61 - 1)``. That value is uniform
  on ``[0, 2**61 - 1]``; the single value ``p = 2**61 - 1`` itself is rejected, so elements
  are exactly uniform on ``[0, p)``. A rejected word at position ``q`` is replaced by the first
  acceptable word of its own stream, keyed ``HMAC-SHA256(subkey, b"reject" || q as 8 bytes
  little-endian)``, so every other element keeps its place and the stream can still be made
  in any order and chunking. Rejection happens with probability 2**-61 per word, i.e.
  practically never, and costs nothing when it doesn't.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from fedtss.errors import ConfigError
from fedtss.field import MODULUS

__all__ = [
    "KEY_BYTES",
    "COEFFICIENTS_LABEL",
    "PROJECTION_LABEL",
    "derive_subkey",
    "fill_keystream_words",
    "keystream_words",
    "replace_rejected_words",
    "uniform_field_elements",
]

KEY_BYTES = 32
COEFFICIENTS_LABEL = b"fedtss/shamir/coefficients/v1"
PROJECTION_LABEL = b"fedtss/shamir/projection/v1"

# Bytes encrypted per call: big enough to amortize the call, small enough that the zero
# plaintext is a fixed 1 MiB rather than the size of the output.
_CHUNK_BYTES = 1 << 20
_ZEROS = bytes(_CHUNK_BYTES)
_P = np.uint64(MODULUS)


def derive_subkey(key: bytes, label: bytes) -> bytes:
    """Return the AES-256 key for one use of ``key``; refuses keys that are not 32 bytes."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise ConfigError(f"key must be {KEY_BYTES} bytes from os.urandom, got {_describe(key)}")
    return hmac.new(bytes(key), label, hashlib.sha256).digest()


def fill_keystream_words(out: NDArray[np.uint64], subkey: bytes, start_word: int = 0) -> None:
    """Write stream words ``start_word .. start_word + out.size`` into C-contiguous ``out``."""
    if not out.flags.c_contiguous or out.dtype != np.uint64:
        raise ConfigError("keystream output must be a C-contiguous uint64 array")
    skip = (start_word % 2) * 8  # the stream is produced in 16-byte AES blocks
    counter = (start_word // 2).to_bytes(16, "big")
    encryptor = Cipher(algorithms.AES(subkey), modes.CTR(counter)).encryptor()
    target = out.reshape(-1).view(np.uint8)
    if skip:
        encryptor.update(bytes(skip))
    _encrypt_zeros_into(encryptor, target)


def keystream_words(subkey: bytes, count: int, start_word: int = 0) -> NDArray[np.uint64]:
    """Return ``count`` raw stream words starting at ``start_word``."""
    out = np.empty(count, dtype=np.uint64)
    fill_keystream_words(out, subkey, start_word)
    return out


def replace_rejected_words(
    words: NDArray[np.uint64], subkey: bytes, start_word: int = 0
) -> int:
    """Replace, in place, every word whose low 61 bits equal p (see the module docstring).

    ``words`` (1-D) holds stream words ``start_word .. start_word + words.size``. Returns how
    many words were replaced.
    """
    rejected = np.flatnonzero((words & _P) == _P)
    for index in rejected:
        position = start_word + int(index)
        replacement_key = hmac.new(subkey, b"reject" + position.to_bytes(8, "little"), hashlib.sha256)
        words[index] = _first_acceptable_word(replacement_key.digest())
    return int(rejected.size)


def _first_acceptable_word(subkey: bytes) -> np.uint64:
    position = 0
    while True:
        word = keystream_words(subkey, 1, position)[0]
        if (word & _P) != _P:
            return word
        position += 1


def uniform_field_elements(key: bytes, count: int, *, label: bytes) -> NDArray[np.uint64]:
    """Return ``count`` field elements, exactly uniform on [0, p), derived from ``key``."""
    subkey = derive_subkey(key, label)
    words = keystream_words(subkey, count)
    replace_rejected_words(words, subkey)
    np.bitwise_and(words, _P, out=words)
    return words


def _encrypt_zeros_into(encryptor, target: NDArray[np.uint8]) -> None:
    # update_into writes straight into ``target`` (no copies) but wants block_size - 1 = 15
    # spare bytes after its output, so the last 15 bytes go through a tiny temporary.
    total = target.size
    zeros = memoryview(_ZEROS)
    done = 0
    while (piece := min(_CHUNK_BYTES, total - done - 15)) > 0:
        encryptor.update_into(zeros[:piece], target[done:])
        done += piece
    if done < total:
        target[done:] = np.frombuffer(encryptor.update(bytes(total - done)), dtype=np.uint8)


def _describe(key: object) -> str:
    if isinstance(key, (bytes, bytearray)):
        return f"{len(key)} bytes"
    return type(key).__name__
