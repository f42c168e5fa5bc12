"""Normalising what people type (product keys, emails, codes) and masking secrets.

Reward codes are secrets: only their owner sees them whole. Everywhere else (logs,
audit events, staff pages, CLI output) they are masked with `mask_code`.

Account addresses (`normalize_email`) follow one grammar, so that an account is one
mailbox and the address stored is exactly the address the relay sends to (RCPT TO):

    address = local "@" domain                       at most 254 characters in all
    local   = atom *("." atom)                       at most 64 characters (RFC 5321 Dot-string)
    atom    = 1*( ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/"
                  / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~" )
    domain  = label 1*("." label), in its IDNA (punycode) form; the last label is not all digits
    label   = letter or digit, then up to 62 letters, digits or "-", not ending in "-"

These are the characters of the HTML `input type=email` (WHATWG) form, with RFC 5321's
rule that dots only separate atoms. Nothing else: no comments `alice(2)@`, quoted strings
`"a b"@`, angle forms `x<m@evil.example>`, address lists, IP literals, control characters
or whitespace (only ASCII whitespace at either end is trimmed, as a browser does), and no
internationalised local parts (SMTPUTF8). An internationalised domain is converted with
IDNA 2008 and UTS 46 (the `idna` package, as browsers convert host names):
`bob@bücher.example` is the account `bob@xn--bcher-kva.example`, whichever way it is typed.

Normalised once: the whole address is lower-cased (the domain is case-insensitive; the
local part is lower-cased too, as it always has been, so existing accounts keep their
identity; no mail provider in use treats case as a different mailbox).

Sub-addresses (`ann+tag@example.com`) are accounts of their own (the "+" is not special
to every provider, so it is never stripped). But they usually reach one mailbox, so a
redemption from an address that shares its mailbox key (`same_mailbox_key`: the local part
before the first "+", and the domain) with an account that already redeemed the campaign
is held for manual review (R-X12) instead of being granted (promo/redemption.py), and
sign-in links are limited per mailbox, not per sub-address (promo/auth.py).
"""

from __future__ import annotations

import re

import idna

from promo.errors import InputError

PRODUCT_KEY_LENGTH = 25
_SEPARATORS = re.compile(r"[\s\-]+")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_ASCII_WHITESPACE = " \t\n\r\f"  # what a browser trims from an email field's ends
MAX_LOCAL, MAX_ADDRESS = 64, 254
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
    """The account for a typed address, in the one grammar of this module's docstring;
    InputError naming `field` (and the part at fault, never echoing the input) otherwise."""
    text = (value or "").strip(_ASCII_WHITESPACE)
    if not text:
        raise InputError.one(field, "is required (an email address)")
    if len(text) > 4 * MAX_ADDRESS:  # bound the work before IDNA looks at it
        raise InputError.one(field, f"an email address has at most {MAX_ADDRESS} characters")
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise InputError.one(field, "is not an email address: it needs a name, @ and a domain, such as name@example.com")
    if not _LOCAL.fullmatch(local):
        raise InputError.one(field, "the part before @ may hold only letters, digits and ! # $ % & ' * + - / = ? ^ _ ` { | } ~, "
                                    "with single dots between them (no spaces, quotes, brackets, comments or second @)")
    if len(local) > MAX_LOCAL:
        raise InputError.one(field, f"the part before @ has at most {MAX_LOCAL} characters")
    host = _ascii_domain(domain)
    if host is None:
        raise InputError.one(field, "the part after @ is not a domain name, such as example.com")
    address = f"{local.lower()}@{host}"
    if len(address) > MAX_ADDRESS:
        raise InputError.one(field, f"an email address has at most {MAX_ADDRESS} characters")
    return address


def _ascii_domain(domain: str) -> str | None:
    """The domain in lower-case IDNA form, or None when it is not a domain name."""
    host = domain.lower()
    if not host.isascii() or "xn--" in host:  # a U-label to convert, or an A-label to check
        try:
            host = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return None
    if not _DOMAIN.fullmatch(host) or host.rsplit(".", 1)[1].isdigit():  # not a dotted IPv4 address either
        return None
    return host


def same_mailbox_key(account: str) -> tuple[str, str]:
    """What a normalised account shares with its sub-addresses: (local part before the
    first "+", domain). `ann@example.com` and `ann+promo@example.com` share ("ann", "example.com")."""
    local, _, domain = account.rpartition("@")
    return local.partition("+")[0], domain


def mailbox_params(account: str) -> dict[str, object]:
    """SQL parameters for "an account of this mailbox", as two index ranges:
    `account_email = :base OR (account_email >= :lo AND account_email < :hi
    AND substr(account_email, length(account_email) - :n + 1) = :at_domain)` (base+anything sorts
    in [base+, base,); the tail spelled so that PostgreSQL reads it as SQLite does)."""
    base, domain = same_mailbox_key(account)
    return {"base": f"{base}@{domain}", "lo": f"{base}+", "hi": f"{base},", "n": len(domain) + 1, "at_domain": f"@{domain}"}


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
