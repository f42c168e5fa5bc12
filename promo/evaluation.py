"""Dry runs: "would this qualify?" for a SKU, country and dates, with no evidence needed.
The same rule code path as a redemption (campaign.evaluate); nothing is written."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promo.campaign_store import get_campaign
from promo.campaigns.purchase_offer import Claim, PurchaseOffer
from promo.campaigns.rules import Decision
from promo.catalog import load_catalog, normalize_sku
from promo.countries import normalize_country
from promo.errors import FieldError, InputError
from promo.timeutil import moment_text, parse_moment


@dataclass(frozen=True)
class DryRun:
    campaign: str
    sku: str
    country: str  # where it was bought and activated; or give the two below
    purchased_at: str
    activated_at: str
    account: str = "dry-run@promo.invalid"
    purchase_country: str = ""  # R-X2: each overrides `country` for its own fact
    activation_country: str = ""


def evaluate_dry_run(conn: sqlite3.Connection, request: DryRun, now: datetime) -> Decision:
    stored = get_campaign(conn, request.campaign)
    campaign = stored.campaign
    if not isinstance(campaign, PurchaseOffer):
        raise InputError.one("campaign", f"{request.campaign} is a {campaign.kind}; dry runs are for purchase offers")
    catalog = load_catalog(conn)
    errors: list[FieldError] = []
    values: dict[str, Any] = {}  # Claim's fields: a Sku, countries, moments
    countries = {name: getattr(request, name).strip() or request.country for name in ("purchase_country", "activation_country")}
    checks: list[tuple[str, str, Callable[[str, str], object]]] = [
        ("sku", request.sku, lambda v, f: normalize_sku(v, catalog, f)),
        *((name, raw, normalize_country) for name, raw in countries.items()),
        ("purchased_at", request.purchased_at, parse_moment),
        ("activated_at", request.activated_at, parse_moment),
    ]
    for name, raw, check in checks:
        # A country that came from `country` is reported there, where it was typed.
        field = name if name not in countries or getattr(request, name).strip() else "country"
        try:
            values[name] = check(raw, field)
        except InputError as exc:
            errors.extend(e for e in exc.errors if e not in errors)
    if errors:
        raise InputError(errors)
    purchased, activated = values["purchased_at"], values["activated_at"]
    if not campaign.in_order(purchased, activated):  # typed input: a field error, not a refusal
        raise InputError.one("activated_at", f"activation ({moment_text(activated)}) is before purchase "
                             f"({moment_text(purchased)}) in the campaign's zone ({campaign.timezone})")
    claim = Claim(account=request.account, product_key="", **values)
    return campaign.evaluate(claim, now)
