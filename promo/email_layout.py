"""Every email's three parts (subject, text, HTML), rendered from templates/email/<name>/.

The HTML part is drawn in the branded layout templates/email/_layout.html (issue 19, item
11): a header with the service's (or campaign's) name, the content, and a footer with the
support contact as a link. Mail clients ignore style sheets and many CSS layouts, so the
layout is tables with inline styles. The text part says the same things (the code, the
links, the support contact) in the same language: templates/email/<name>/body.txt.

Used by the outbox relay (promo/mail.py), the staff preview of a campaign's emails
(promo/views/preview.py) and nothing else: one way to render an email."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

from promo.templating import Templates

DEFAULT_SERVICE = "Promo"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (white space among them is folded before)
_PHONE_CHARACTERS = re.compile(r"[^0-9+]")


@dataclass(frozen=True)
class EmailParts:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=16)  # once per sender, not once per message
def service_name(from_address: str) -> str:
    """The name the emails are signed with: the sender's display name ("Promo <no-reply@…>")."""
    name = parseaddr(from_address)[0].strip()
    return name or DEFAULT_SERVICE


def contact_href(contact: str) -> str:
    """Where a support contact links to: a web address as it is, a phone number (the only
    other kind a campaign accepts, R-X16) as a tel: link with its digits; "" for anything else."""
    if contact.startswith(("https://", "http://")) and not any(c.isspace() for c in contact):
        return contact
    digits = _PHONE_CHARACTERS.sub("", contact)
    if sum(c.isdigit() for c in digits) >= 6 and "+" not in digits[1:]:
        return f"tel:{digits}"
    return ""


def render_email(templates: Templates, template: str, locale: str, context: dict[str, Any], *,
                 service: str = DEFAULT_SERVICE) -> EmailParts:
    """The subject (one line, only what a reader can see), the text and the HTML of
    `template` in `locale`. `context` holds the template's data plus public_url and recipient."""
    base = f"email/{template}"
    ctx = {**context, "service": service, "contact_href": contact_href}
    # One line, always: a campaign's or organisation's name may hold anything its form let
    # through, and a control character there is no text.
    subject = _CONTROL.sub("", " ".join(templates.render(f"{base}/subject.txt", locale, **ctx).split()))
    text = templates.render(f"{base}/body.txt", locale, **ctx)
    html = templates.render(f"{base}/body.html", locale, **ctx)
    return EmailParts(subject=subject, text=text, html=html)
