"""A shop for tests of what customers read, served by a real `promo serve` process: the
"open-today" offer and variants of it that refuse for each reason a customer can meet
(a narrow product list, windows closed or not yet open, paused, out of codes, capped),
activation records for each case, and signed-in sessions minted in the database."""

from __future__ import annotations

import sqlite3
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import tomli_w

from promo.activations import import_activations
from promo.campaign_store import change_state, get_campaign, save_campaign
from promo.campaigns import parse_campaign_file
from promo.catalog import load_catalog
from promo.db import transaction
from promo.redemption import RedeemRequest, redeem_sync
from tests.support.database import csv_bytes, open_campaign_text, prepare_database, product_key
from tests.support.redemption import add_codes
from tests.support.served import Served, mint_sessions, start_server, write_config

TODAY = datetime.now(UTC).date()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def offer_data(slug: str, **changes: Any) -> dict[str, Any]:
    data = tomllib.loads(open_campaign_text(slug))
    data.update(changes)
    return data


def window(first: int, last: int) -> dict[str, date]:
    return {"first_day": TODAY + timedelta(days=first), "last_day": TODAY + timedelta(days=last)}


def _narrow() -> dict[str, Any]:
    data = offer_data("narrow")
    data["products"] = {"qualifying_skus": ["O365-HOME-ESD", "O365-UNI-FPP"], "excluded_skus": ["O365-HOME-TRIAL"]}
    data["availability"] = {"O365-UNI-FPP": ["DK"]}
    return data


# Every offer of the shop: slug -> its campaign file (as a dict).
OFFERS = {
    "open-today": lambda: offer_data("open-today"),
    "narrow": _narrow,  # R-X3: few qualifying products, one sold in Denmark only
    "late": lambda: offer_data("late", eligibility_window=window(-30, -5)),  # bought in time, activated too late
    "not-yet": lambda: offer_data("not-yet", redemption_window=window(2, 40), eligibility_window=window(-30, 30)),
    "closed": lambda: offer_data("closed", redemption_window=window(-30, -1), eligibility_window=window(-30, -2)),
    "paused": lambda: offer_data("paused"),
    "empty": lambda: offer_data("empty"),  # no codes at all
    "capped": lambda: offer_data("capped", total_cap=1),
    "draft": lambda: offer_data("draft"),
    # Zones far from UTC: a day's edges fall on another UTC date (east: its start; west: its end).
    "auckland": lambda: offer_data("auckland", timezone="Pacific/Auckland"),
    "los-angeles": lambda: offer_data("los-angeles", timezone="America/Los_Angeles"),
}
NO_CODES = {"empty"}


@dataclass(frozen=True)
class Key:
    number: int
    sku: str
    country: str
    account: str  # every record names its account (R-X5), so keys are never "unbound"
    purchased: int = -2  # days from today
    activated: int = -2


def account(name: str) -> str:
    return f"{name}@example.com"


KEYS = [
    Key(1, "O365-HOME-TRIAL", "DK", account("excluded")),
    Key(2, "O365-HOME-FPP", "DK", account("not-qualifying")),
    Key(3, "O365-UNI-FPP", "NO", account("not-here")),
    Key(4, "O365-HOME-ESD", "US", account("elsewhere")),
    Key(5, "O365-HOME-ESD", "DK", account("mismatch")),
    Key(6, "O365-HOME-ESD", "DK", account("bought-early"), purchased=-40),
    Key(7, "O365-HOME-ESD", "DK", account("activated-late"), purchased=-10, activated=-3),
    Key(8, "O365-HOME-ESD", "DK", account("too-early")),
    Key(9, "O365-HOME-ESD", "DK", account("too-late"), purchased=-10, activated=-10),
    Key(10, "O365-HOME-ESD", "DK", account("no-terms")),
    Key(11, "O365-HOME-ESD", "DK", account("second")),  # redeemed in set-up
    Key(12, "O365-UNI-FPP", "DK", account("second")),
    Key(13, "O365-HOME-ESD", "DK", account("owner")),  # somebody else's key
    Key(14, "O365-HOME-ESD", "DK", account("used")),  # redeemed in set-up, then tried again
    Key(15, "O365-HOME-ESD", "DK", account("no-codes")),
    Key(16, "O365-HOME-ESD", "DK", account("capped")),
    Key(17, "O365-HOME-ESD", "DK", account("first")),  # takes the capped offer's only reward in set-up
    Key(18, "O365-HOME-ESD", "DK", account("paused")),
    Key(19, "O365-HOME-ESD", "DK", account("winner")),  # redeems for real (pages and emails of a reward)
    Key(20, "O365-UNI-FPP", "NO", account("winner-nb")),
    Key(21, "O365-HOME-FPP", "GB", account("winner-en")),
]
# Redeemed while setting up: (offer, key number).
REDEEMED = [("open-today", 11), ("open-today", 14), ("capped", 17)]


def build_shop(path: Path) -> sqlite3.Connection:
    conn = prepare_database(path)
    now = datetime.now(UTC)
    with transaction(conn):
        for slug, data in OFFERS.items():
            campaign = parse_campaign_file(tomli_w.dumps(data()), load_catalog(conn))
            save_campaign(conn, campaign, actor="test", now=now, publish=slug != "draft")
        change_state(conn, "paused", "pause", actor="test", now=now)
    import_activations(conn, catalog=load_catalog(conn), now=now, source=csv_bytes(
        ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
        [[product_key(k.number), k.sku, k.country, day(k.purchased), day(k.activated), k.account] for k in KEYS]))
    for n, slug in enumerate(OFFERS):
        if slug not in NO_CODES:
            add_codes(conn, get_campaign(conn, slug), 10, start=100 * n)
    by_number = {k.number: k for k in KEYS}
    for slug, number in REDEEMED:
        request = RedeemRequest(slug, by_number[number].account, product_key(number), terms_accepted=True)
        assert redeem_sync(conn, request.normalized(), now).redeemed
    return conn


@dataclass
class Shop:
    served: Served
    conn: sqlite3.Connection
    sessions: dict[str, tuple[str, str]]

    @property
    def url(self) -> str:
        return self.served.url

    def session(self, email: str) -> tuple[str, str]:
        if email not in self.sessions:
            self.sessions.update(mint_sessions(self.conn, [email]))
        return self.sessions[email]

    def get(self, path: str, *, lang: str | None = None, as_account: str | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.url + path, headers=self._headers(lang, as_account, headers), timeout=30)

    def post(self, path: str, data: dict[str, str], *, lang: str | None = None, as_account: str | None = None) -> httpx.Response:
        headers = self._headers(lang, as_account, None)
        if as_account:
            data = {"csrf": self.session(as_account)[1], **data}
        return httpx.post(self.url + path, data=data, headers=headers, timeout=30)

    def redeem(self, slug: str, number: int | str, *, as_account: str, country: str = "DK", terms: bool = True,
               lang: str = "en") -> httpx.Response:
        form = {"product_key": product_key(number) if isinstance(number, int) else number, "country": country}
        if terms:
            form["accept_terms"] = "yes"
        return self.post(f"/offers/{slug}/redeem", form, lang=lang, as_account=as_account)

    def _headers(self, lang: str | None, as_account: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if lang:
            headers["Accept-Language"] = {"en": "en-GB,en;q=0.8", "da": "da-DK,da;q=0.9", "nb": "nb-NO,nb;q=0.9"}[lang]
        if as_account:
            headers["Cookie"] = f"promo_session={self.session(as_account)[0]}"
        return headers


@contextmanager
def served_shop(directory: Path, **environment: str) -> Iterator[Shop]:
    """The shop in its own database, served by `promo serve` (no email sent unless
    `environment` points the relay at a mail server)."""
    database = directory / "promo.sqlite3"
    conn = build_shop(database)
    config = write_config(directory, database)
    settings = {"PROMO_MAIL_SINK": "false", "PROMO_MAIL_PORT": "9", "PROMO_LOGGING_LEVEL": "WARNING",
                "PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR": "40", **environment}
    process: subprocess.Popen[bytes]
    process, served = start_server(config, directory / "server.log", **settings)
    try:
        yield Shop(served, conn, {})
    finally:
        process.terminate()
        process.wait(timeout=15)
        conn.close()
