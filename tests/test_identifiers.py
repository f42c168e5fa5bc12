"""One account is one mailbox: the grammar of account addresses (promo/identifiers.py),
and the property that the address the relay sends to is exactly the stored account."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from promo.config import Settings
from promo.errors import InputError
from promo.identifiers import normalize_email, same_mailbox_key
from promo.mail import RawEmail, build_email
from promo.outbox import OutboxMessage
from promo.templating import Templates


@pytest.mark.parametrize("hostile", [
    "alice(2)@example.com",            # an RFC 5322 comment: SMTP would deliver to alice@example.com
    "(comment)alice@example.com",
    "alice@example.com(comment)",
    "x<mallory@evil.example>",         # an angle address: the mail would go to mallory
    "Alice <alice@example.com>",
    '"a b"@example.com',               # quoted strings
    '"alice"@example.com',
    "x\x00y@example.com",              # control characters
    "x\ry@example.com", "x\ny@example.com", "ann@example.com\r\nRCPT TO:<mallory@evil.example>",
    "ann@exa\tmple.com", "an n@example.com", "ann@ example.com", "ann @example.com",   # whitespace
    "ann@example.com,mallory@evil.example", "ann@example.com;bob@example.com",
    "a@b@example.com", "@example.com", "ann@", "ann", "ann@localhost", "ann@[127.0.0.1]", "ann@1.2.3.4",
    ".ann@example.com", "ann.@example.com", "a..nn@example.com",    # dots only between atoms (RFC 5321)
    "ann@example..com", "ann@-example.com", "ann@example-.com", "ann@exa_mple.com", "ann@example.com.",
    "ånn@example.com",                 # internationalised local parts (SMTPUTF8) are not accepted
    "ann@xn--zz.example",              # a malformed IDNA label
    "x" * 65 + "@example.com",         # local part over 64
    "a@" + ".".join(["b" * 60] * 5) + ".example",    # over 254 in all
    "ann@" + "b" * 64 + ".example",    # a label over 63
])
def test_addresses_outside_the_grammar_are_refused_naming_the_field(hostile: str) -> None:
    with pytest.raises(InputError) as info:
        normalize_email(hostile, "email")
    assert [e.field for e in info.value.errors] == ["email"]
    assert "\x00" not in str(info.value) and "\n" not in str(info.value)  # the refusal never echoes the input


@pytest.mark.parametrize(("typed", "account"), [
    ("ann@example.com", "ann@example.com"),
    ("  Ann.Lee@Example.COM\n", "ann.lee@example.com"),   # ends trimmed; the whole address lower-cased, as always
    ("bob@bücher.example", "bob@xn--bcher-kva.example"),  # IDN domain in its IDNA (punycode) form
    ("bob@BÜCHER.example", "bob@xn--bcher-kva.example"),
    ("bob@XN--BCHER-KVA.example", "bob@xn--bcher-kva.example"),  # already punycode: the same account
    ("bob@bücher\u3002example", "bob@xn--bcher-kva.example"),     # an ideographic full stop separates labels too
    ("bob@faß.de", "bob@xn--fa-hia.de"),                  # IDNA 2008 (as browsers), not 2003's "fass.de"
    ("ann+promo@example.com", "ann+promo@example.com"),   # sub-addresses are accounts of their own (see R-X12)
    ("o'neil!#$%&*/=?^_`{|}~-@example.com", "o'neil!#$%&*/=?^_`{|}~-@example.com"),
    ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ("a@b.xn--p1ai", "a@b.xn--p1ai"),
])
def test_accepted_addresses_are_normalised_once(typed: str, account: str) -> None:
    assert normalize_email(typed) == account
    assert normalize_email(account) == account  # normalising is idempotent: the account is its own form


def test_the_mailbox_key_ignores_the_tag_only() -> None:
    assert same_mailbox_key("ann+x@example.com") == same_mailbox_key("ann@example.com") == ("ann", "example.com")
    assert same_mailbox_key("ann+x+y@example.com") == ("ann", "example.com")
    assert same_mailbox_key("ann@example.org") != same_mailbox_key("ann@example.com")
    assert same_mailbox_key("anna@example.com") != same_mailbox_key("ann@example.com")


# ---- the account is the RCPT

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
HOSTILE = ATEXT + ".@()<>[]:;,\\\" \t\r\n\x00\x7fåü\u3002\u00ad"
ADDRESSES = st.one_of(
    st.emails(),
    st.text(max_size=80),
    st.builds(lambda local, domain: f"{local}@{domain}", st.text(HOSTILE, max_size=70),
              st.one_of(st.text(HOSTILE, max_size=40), st.sampled_from(["example.com", "bücher.example", "XN--BCHER-KVA.example"]))),
)
TEMPLATES = Templates()


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed=ADDRESSES)
def test_whatever_is_accepted_is_exactly_the_smtp_recipient(settings: Settings, typed: str) -> None:
    try:
        account = normalize_email(typed)
    except InputError as exc:
        assert [e.field for e in exc.errors] == ["account_email"]
        return
    assert account.isascii() and account == account.strip() and account.count("@") == 1 and len(account) <= 254
    assert normalize_email(account) == account
    message = OutboxMessage(id=1, template="signin_link", recipient=account, subject_ref="signin:x", locale="en",
                            message_id="<1@promo.test>", attempts=0, payload={"link": "http://testserver/signin/x", "minutes": 15})
    email = build_email(message, {"link": "http://testserver/signin/x", "minutes": 15}, TEMPLATES, settings.mail,
                        "http://testserver", datetime.now(UTC))
    assert isinstance(email, RawEmail)  # an ASCII address: the relay's wire path
    assert email.recipients == [account]  # the RCPT is the account, byte for byte
