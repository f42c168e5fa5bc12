"""Demo data for the default run: an offer open today, a small code pool and a few
documented product keys, so a newcomer goes from `scripts/serve` to an emailed code in a
minute. Safe to run again: windows move to include today, codes are topped up."""

from __future__ import annotations

import csv
import io
import secrets
import sqlite3
import string
import tomllib
from datetime import datetime, timedelta
from typing import Any

from promo.campaign_store import StoredCampaign, get_campaign, get_campaign_of, save_campaign
from promo.campaigns import campaign_from_dict, shipped_campaign_text
from promo.campaigns.donation_program import DonationProgram
from promo.catalog import load_catalog
from promo.db import transaction
from promo.stock import import_and_rearm
from promo.timeutil import db_time, moment_to_db

DEMO_SLUG = "demo-xbox-gold"
POOL_SIZE = 50
DEMO_ACTOR = "demo"
# (product key, SKU, country): the README lists these for newcomers.
DEMO_KEYS = [
    ("DEMO1-AAAAA-BBBBB-CCCCC-00001", "O365-HOME-ESD", "DK"),  # qualifies
    ("DEMO2-AAAAA-BBBBB-CCCCC-00002", "O365-UNI-FPP", "NO"),  # qualifies
    ("DEMO3-AAAAA-BBBBB-CCCCC-00003", "O365-HOME-FPP", "GB"),  # qualifies
    ("DEMO4-AAAAA-BBBBB-CCCCC-00004", "O365-HOME-TRIAL", "DK"),  # refused: R-X4
    ("DEMO5-AAAAA-BBBBB-CCCCC-00005", "O365-HOME-ESD", "US"),  # refused: R-X2
]


def demo_definition(now: datetime) -> dict[str, Any]:
    data = tomllib.loads(shipped_campaign_text("office365-xbox-gold-2013"))
    today = now.date()
    data.update(slug=DEMO_SLUG, name="Demo: free 12-month Xbox Live Gold with Office 365")
    data["names"] = {"da": "Demo: gratis 12 måneders Xbox Live Gold med Office 365",
                     "nb": "Demo: gratis 12 måneders Xbox Live Gold med Office 365"}
    data["eligibility_window"] = {"first_day": today - timedelta(days=60), "last_day": today + timedelta(days=30)}
    data["redemption_window"] = {"first_day": today - timedelta(days=60), "last_day": today + timedelta(days=60)}
    data["reward"]["code_expires_on"] = today + timedelta(days=365)
    # The demo keys name no account, so that a newcomer can redeem with any address. A real
    # offer leaves this out: such a key then goes to manual review (R-X5).
    data["allow_unbound_keys"] = True
    return data


def _demo_code() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(5))


def _import_demo_codes(conn: sqlite3.Connection, stored: StoredCampaign, rows: list[tuple[str, ...]], header: tuple[str, ...],
                       now: datetime) -> None:
    """Generated codes go into the pool through the import, as any code file does: one batch
    named "demo", a source line per code and the audit event (call outside a transaction)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    import_and_rearm(conn, stored, source=io.BytesIO(text.getvalue().encode("utf-8")), source_name="demo", now=now,
                     actor=DEMO_ACTOR)


def install_demo(conn: sqlite3.Connection, now: datetime) -> dict[str, int]:
    """Create or refresh the demo offer (call outside a transaction)."""
    with transaction(conn):
        campaign = campaign_from_dict(demo_definition(now), load_catalog(conn))
        save_campaign(conn, campaign, actor=DEMO_ACTOR, now=now)
        stored = get_campaign(conn, DEMO_SLUG)
        day = moment_to_db((now - timedelta(days=3)).date())
        for key, sku, country in DEMO_KEYS:
            conn.execute(
                "INSERT INTO activations (product_key, sku, country, activation_country, purchased_at, activated_at,"
                " account_email, imported_at, import_batch) VALUES (:k, :sku, :c, :c, :d, :d, NULL, :now, 'demo')"
                " ON CONFLICT (product_key) DO UPDATE SET purchased_at = excluded.purchased_at,"
                " activated_at = excluded.activated_at",
                {"k": key.replace("-", ""), "sku": sku, "c": country, "d": day, "now": db_time(now)},
            )
        available = conn.execute(
            "SELECT COUNT(*) FROM reward_codes WHERE campaign_id = :c AND issued_at IS NULL AND voided_at IS NULL",
            {"c": stored.id}).fetchone()[0]
    added = max(0, POOL_SIZE - available)
    if added:
        _import_demo_codes(conn, stored, [(_demo_code(),) for _ in range(added)], ("code",), now)
    install_donation_program(conn, now)
    return {"codes_added": added, "keys": len(DEMO_KEYS)}


DONATION_KEYS_PER_PRODUCT = 20


def install_donation_program(conn: sqlite3.Connection, now: datetime) -> None:
    """The shipped nonprofit program, with licence keys to hand out (call outside a transaction)."""
    with transaction(conn):
        program = campaign_from_dict(tomllib.loads(shipped_campaign_text("nonprofit-donations")), load_catalog(conn))
        save_campaign(conn, program, actor=DEMO_ACTOR, now=now)
        stored = get_campaign_of(conn, program.slug, DonationProgram)
        missing: list[tuple[str, ...]] = []
        for sku in stored.campaign.products:
            have = conn.execute("SELECT COUNT(*) FROM reward_codes WHERE campaign_id = :c AND sku = :s AND issued_at IS NULL"
                                " AND voided_at IS NULL", {"c": stored.id, "s": sku}).fetchone()[0]
            missing += [(_demo_code(), sku) for _ in range(max(0, DONATION_KEYS_PER_PRODUCT - have))]
    if missing:
        _import_demo_codes(conn, stored, missing, ("code", "sku"), now)
