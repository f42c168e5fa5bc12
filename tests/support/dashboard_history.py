"""A campaign with a known history, for the dashboard tests: redemptions at known local
hours (both sides of midnight, and across the spring clock change), refusals of known
reasons, emails in known states and review claims. Everything goes through the real code
paths (redeem_sync, the outbox's mark_sent/mark_failed, submit_claim/reject)."""

from __future__ import annotations

import sqlite3
import tomllib
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import tomli_w

from promo.activations import Activation, import_activations
from promo.campaign_store import StoredCampaign, get_campaign, save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog
from promo.codes import import_codes
from promo.db import transaction
from promo.outbox import enqueue, mark_failed, mark_sent
from promo.redemption import RedeemRequest, RedemptionResult, redeem_sync
from promo.reviews import reject, submit_claim
from tests.support.database import SLUG, csv_bytes, product_key, reward_code

CPH = ZoneInfo("Europe/Copenhagen")
KOLKATA = ZoneInfo("Asia/Kolkata")
SPRING = "spring-2026"
CODES = 10


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


# When the dashboard is looked at: Monday 30 March 2026, noon in Copenhagen (CEST, +02:00).
NOW = local(CPH, 2026, 3, 30, 12, 0)


def campaign_text(slug: str, tz: str, first: str, last: str) -> str:
    data = tomllib.loads(shipped_campaign_text(SLUG))
    data.update(slug=slug, timezone=tz, allow_unbound_keys=True)  # the history's keys name no account (R-X5 is not tested here)
    data["eligibility_window"] = {"first_day": date(2026, 3, 1), "last_day": date(2026, 3, 31)}
    data["redemption_window"] = {"first_day": date.fromisoformat(first), "last_day": date.fromisoformat(last)}
    data["reward"]["code_expires_on"] = date(2026, 12, 31)
    return tomli_w.dumps(data)


def add_campaign(conn: sqlite3.Connection, slug: str, tz: str, first: str = "2026-03-20", last: str = "2026-04-10",
                 codes: int = CODES, code_start: int = 0) -> StoredCampaign:
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(campaign_text(slug, tz, first, last), load_catalog(conn)), actor="test",
                      now=datetime(2026, 3, 1, tzinfo=UTC))
    stored = get_campaign(conn, slug)
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source_name="spring.csv",
                 source=csv_bytes(["code"], [[reward_code(n)] for n in range(code_start, code_start + codes)]),
                 now=datetime(2026, 3, 15, 12, tzinfo=UTC))
    return stored


def add_keys(conn: sqlite3.Connection, rows: list[tuple[int, str, str]]) -> None:
    """(key number, sku, country), bought and activated on 2026-03-10."""
    import_activations(conn, catalog=load_catalog(conn), now=datetime(2026, 3, 11, tzinfo=UTC), source=csv_bytes(
        ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
        [[product_key(n), sku, country, "2026-03-10", "2026-03-10", ""] for n, sku, country in rows]))


def attempt(conn: sqlite3.Connection, slug: str, key: int, account: str, at: datetime, *,
            terms: bool = True) -> RedemptionResult:
    request = RedeemRequest(campaign=slug, account_email=account, product_key=product_key(key), terms_accepted=terms)
    return redeem_sync(conn, request.normalized(), at)


def spring_history(conn: sqlite3.Connection) -> StoredCampaign:
    """The known history of SPRING (Europe/Copenhagen, redemption 2026-03-20 to 2026-04-10)."""
    stored = add_campaign(conn, SPRING, "Europe/Copenhagen")
    add_keys(conn, [(1, "O365-HOME-ESD", "DK"), (2, "O365-HOME-ESD", "DK"), (3, "O365-HOME-ESD", "DK"),
                    (4, "O365-HOME-ESD", "DK"), (5, "O365-HOME-ESD", "DK"), (6, "O365-HOME-MONTHLY", "DK"),
                    (7, "O365-HOME-ESD", "US"), (8, "O365-HOME-ESD", "US"), (9, "O365-HOME-ESD", "DK"),
                    (10, "O365-HOME-ESD", "DK")])
    redeemed = [
        attempt(conn, SPRING, 1, "a1@example.com", local(CPH, 2026, 3, 27, 23, 59, 59)),  # the last second of the 27th
        attempt(conn, SPRING, 2, "a2@example.com", local(CPH, 2026, 3, 28, 0, 0, 0)),  # the first of the 28th
        attempt(conn, SPRING, 3, "a3@example.com", local(CPH, 2026, 3, 28, 10, 15)),
        attempt(conn, SPRING, 4, "a4@example.com", local(CPH, 2026, 3, 28, 10, 45)),
        attempt(conn, SPRING, 5, "a5@example.com", local(CPH, 2026, 3, 29, 3, 30)),  # after 02:00 became 03:00
    ]
    assert all(r.redeemed for r in redeemed)
    refused = [
        attempt(conn, SPRING, 6, "a6@example.com", local(CPH, 2026, 3, 28, 10, 20)),  # R-X4 monthly subscription
        attempt(conn, SPRING, 7, "a7@example.com", local(CPH, 2026, 3, 28, 11, 0)),  # R-X2 bought in the US
        attempt(conn, SPRING, 8, "a8@example.com", local(CPH, 2026, 3, 28, 11, 5), terms=False),  # R-X2 and R-X8
        attempt(conn, SPRING, 9, "a1@example.com", local(CPH, 2026, 3, 30, 9, 0)),  # R-X6 a second reward
        attempt(conn, SPRING, 10, "a10@example.com", local(CPH, 2026, 3, 19, 12, 0)),  # R-X1 before it opens
    ]
    assert not any(r.redeemed for r in refused)
    ids = {row[0]: row[1] for row in conn.execute(
        "SELECT subject_ref, id FROM outbox WHERE campaign_id = :c", {"c": stored.id})}
    with transaction(conn):
        for n in (0, 1, 2):  # three reward emails sent, one refused by the server, one still queued
            mark_sent(conn, ids[f"redemption:{redeemed[n].redemption_id}"], now=local(CPH, 2026, 3, 28, 12), clear_payload=False)
        mark_failed(conn, ids[f"redemption:{redeemed[3].redemption_id}"], error="550 no such user", now=NOW)
        enqueue(conn, template="signin_link", recipient="x@example.com", subject_ref="signin:x", at=NOW)  # no campaign
    with transaction(conn):
        claims = [submit_claim(conn, campaign=SPRING, account_email=f"c{n}@example.com", receipt_file="r", kind="image/png",
                               locale="en", ip=None, now=local(CPH, 2026, 3, 30, 8),
                               activation=Activation(product_key(20 + n).replace("-", ""), "O365-HOME-ESD", "DK", "DK",
                                                     date(2026, 3, 10), date(2026, 3, 10), None))
                  for n in range(3)]
        reject(conn, claims[2], reviewer="support@example.com", reason="the receipt is unreadable", now=NOW, ip=None)
    return get_campaign(conn, SPRING)
