"""Normalising what people type (product keys, emails, codes) and masking secrets.

Reward codes are secrets: only their owner sees them whole. Everywhere else (logs,
audit events, staff pages, CLI output) they are masked with `mask_code`.
"""

from __future__ import annotations

import re

from promo.errors import InputError

PRODUCT_KEY_LENGTH = 25
_SEPARATORS = re.compile(r"[\s\-]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ALNUM = re.compile(r"[^\W_]")  # exactly what str.isalnum() accepts (\w is isalnum plus "_")


def normalize_product_key(value: str, field: str = "product_key") -> str:
    """Accept keys as people type them: any case, with or without dashes or spaces."""
    key = _SEPARATORS.sub("", value or "").upper()
    if not key:
        raise InputError.one(field, "is required")
    if not key.isascii() or not key.isalnum() or len(key) != PRODUCT_KEY_LENGTH:
        raise InputError.one(field, f"a product key has {PRODUCT_KEY_LENGTH} letters and digits (dashes and spaces are ignored)")
    return key


def mask_product_key(key: str) -> str:
    return "*****-*****-*****-*****-" + key[-5:] if len(key) == PRODUCT_KEY_LENGTH else "*" * len(key)


def normalize_email(value: str, field: str = "account_email") -> str:
    """Accounts compare case-insensitively: store and compare the lower-cased address."""
    email = (value or "").strip().lower()
    if not email:
        raise InputError.one(field, "is required (an email address)")
    if len(email) > 254 or not _EMAIL.match(email):
        raise InputError.one(field, f"{value!r} is not an email address")
    return email


def normalize_code(value: str) -> str:
    return (value or "").strip().upper()


def mask_code(code: str, keep: int = 4) -> str:
    """Keep separators and the last four letters or digits: ****-...-*BCDE.
    (On every redemption's path: one scan for the cut, then one C-level substitution.)"""
    cut, seen = 0, 0
    for i in range(len(code) - 1, -1, -1):
        if code[i].isalnum():
            seen += 1
            if seen == keep:
                cut = i
                break
    return _ALNUM.sub("*", code[:cut]) + code[cut:]
