"""Campaign kinds and campaign files.

A kind is a class that has what kind.CampaignKind lists: `from_dict(data, catalog)`,
`to_dict()` and what it supports (a redemption window, a low-stock threshold, terms, its
code pools, how its codes are issued, its console page). Adding a kind (nonprofit
donations, R-N*/R-V*) means adding a module and one line in KINDS; the purchase offer is
not touched, and no module outside promo/campaigns/ names a kind
(tests/test_architecture_kinds.py).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from datetime import date
from importlib import resources
from typing import Any

import tomli_w

from promo.campaigns import donation_program, purchase_offer
from promo.campaigns.kind import CampaignKind
from promo.catalog import Sku
from promo.errors import FieldError, InputError

KINDS: dict[str, type[CampaignKind]] = {
    purchase_offer.KIND: purchase_offer.PurchaseOffer,
    donation_program.KIND: donation_program.DonationProgram,
}


def kind_name(kind: type[CampaignKind]) -> str:
    """The name a kind is stored under (its `kind`), asked of its class."""
    return next(name for name, known in KINDS.items() if known is kind)


def campaign_from_dict(data: Mapping[str, Any], catalog: Mapping[str, Sku]) -> CampaignKind:
    kind = data.get("kind")
    if kind not in KINDS:
        raise InputError(FieldError("kind", f"unknown campaign kind {kind!r}; known: {', '.join(sorted(KINDS))}"))
    return KINDS[kind].from_dict(data, catalog)


def parse_campaign_file(text: str, catalog: Mapping[str, Sku]) -> CampaignKind:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(FieldError("file", f"not valid TOML: {exc}")) from None
    return campaign_from_dict(data, catalog)


def render_campaign_file(campaign: CampaignKind) -> str:
    """The canonical campaign file: export writes this, and import of it gives it back."""
    return tomli_w.dumps(campaign.to_dict(), multiline_strings=True, indent=4)


def campaign_to_json(campaign: CampaignKind) -> str:
    return json.dumps(campaign.to_dict(), default=_json_default, ensure_ascii=False, separators=(",", ":"))


def campaign_from_json(text: str, catalog: Mapping[str, Sku]) -> CampaignKind:
    return campaign_from_dict(json.loads(text), catalog)


def shipped_campaign_text(slug: str) -> str:
    return resources.files("promo.campaigns").joinpath(f"{slug}.toml").read_text(encoding="utf-8")


def _json_default(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a campaign definition")
