"""The nonprofit donation program's campaign, and what every part of the program refuses
with. Owns no table: the program is a campaign (promo/campaign_store.py)."""

from __future__ import annotations

import sqlite3

from promo.campaign_store import get_campaign_of
from promo.campaigns.donation_program import DonationProgram
from promo.campaigns.rules import Failure
from promo.errors import FieldError, InputError

PROGRAM = "nonprofit-donations"


class NotAllowed(InputError):
    """Rules forbid this; nothing is written. Carries the failures (rule id and a reason
    key the pages translate) and, for the API and the console, field errors with the rule."""

    status = 403

    def __init__(self, field: str, failures: list[Failure], prefix: str = ""):
        self.failures = failures
        super().__init__([FieldError(field, prefix + f.message, rule=f.rule) for f in failures])


def program(conn: sqlite3.Connection, slug: str = PROGRAM) -> tuple[int, DonationProgram]:
    stored = get_campaign_of(conn, slug, DonationProgram, what="donation program")
    return stored.id, stored.campaign


def require_reason(reason: str, what: str) -> str:
    """A rejection always says why: the person it concerns is told."""
    if not reason.strip():
        raise InputError.one("reason", f"say why {what}")
    return reason.strip()
