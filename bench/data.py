"""Reward codes for the benchmarks: deterministic, but spread like a real pool's.

A real pool's codes are random, so each import lands at a random place in the unique
index; sequential codes (XB000…001, XB000…002) would append to it and flatter the import
by about a third.
"""

from __future__ import annotations

from hashlib import blake2b

ALPHABET = "BCDFGHJKMPQRTVWXY2346789"  # no vowels, no look-alikes, as code vendors do


# Each byte of a hash picks a symbol (byte mod 24: a slight bias, of no matter here).
_SYMBOL_OF_BYTE = bytes(ord(ALPHABET[b % len(ALPHABET)]) for b in range(256))


def code(n: int) -> str:
    """The n-th benchmark code, five groups of five. 25 symbols from a hash of n: a clash
    among a few million is practically impossible (about 2**-60), and an import would
    report one as a duplicate."""
    raw = blake2b(n.to_bytes(8, "big"), digest_size=25).digest().translate(_SYMBOL_OF_BYTE).decode()
    return f"{raw[0:5]}-{raw[5:10]}-{raw[10:15]}-{raw[15:20]}-{raw[20:25]}"
