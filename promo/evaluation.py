"""Dry runs: "would this qualify?" for a SKU, country and dates, with no evidence needed.
The same rule code path as a redemption (campaign.evaluate); nothing is written."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from promo.campaign_store import get_campaign
from promo.campaigns.purchase_offer import Claim
from promo.campaigns.rules import Decision
from promo.catalog import load_catalog, normalize_sku
from promo.countries import normalize_country
from promo.errors import FieldError, InputError
from promo.timeutil import parse_moment


@dataclass(frozen=True)
class DryRun:
    campaign: str
    sku: str
    country: str
    purchased_at: str
    activated_at: str
    account: str = "dry-run@promo.invalid"


def evaluate_dry_run(conn: sqlite3.Connection, request: DryRun, now: datetime) -> Decision:
    stored = get_campaign(conn, request.campaign)
    if stored.campaign.kind != "purchase_offer":
        raise InputError.one("campaign", f"{request.campaign} is a {stored.campaign.kind}; dry runs are for purchase offers")
    catalog = load_catalog(conn)
    errors: list[FieldError] = []
    values: dict[str, object] = {}
    for name, check in (
        ("sku", lambda v: normalize_sku(v, catalog, "sku")),
        ("country", lambda v: normalize_country(v, "country")),
        ("purchased_at", lambda v: parse_moment(v, "purchased_at")),
        ("activated_at", lambda v: parse_moment(v, "activated_at")),
    ):
        try:
            values[name] = check(getattr(request, name))
        except InputError as exc:
            errors.extend(exc.errors)
    if errors:
        raise InputError(errors)
    claim = Claim(account=request.account, product_key="", **values)  # type: ignore[arg-type]
    return stored.campaign.evaluate(claim, now)
