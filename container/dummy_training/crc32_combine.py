"""CRC-32 (gzip polynomial) combination: the CRC of A+B from crc(A), crc(B) and len(B).

Pure-Python GF(2) arithmetic after zlib's ``crc32_combine``; the engine calls it O(1) times per archive, so
speed does not matter. ``crc32`` is the fastest available implementation of the plain checksum.
"""

from __future__ import annotations

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is an install requirement
    from zlib import crc32

__all__ = ["crc32", "crc32_combine"]

_POLY = 0xEDB88320  # reflected gzip polynomial
_X0 = 1 << 31  # the polynomial "1" (x^0) in the reflected representation
_X8 = 1 << 23  # x^8: appending one zero byte multiplies by x^8


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (reflected representation)."""
    m = _X0
    p = 0
    while a:
        if a & m:
            p ^= b
            a ^= m
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x8n(n: int) -> int:
    """x^(8n) modulo the CRC polynomial."""
    result = _X0
    base = _X8
    while n:
        if n & 1:
            result = _multmodp(base, result)
        base = _multmodp(base, base)
        n >>= 1
    return result


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``A + B`` given ``crc1 = crc32(A)``, ``crc2 = crc32(B)`` and ``len2 = len(B)``."""
    if len2 < 0:
        raise ValueError("len2 must be >= 0")
    return _multmodp(_x8n(len2), crc1) ^ crc2
