"""What every campaign kind has, and what each kind says it supports.

Code outside promo/campaigns/ never names a kind: it asks the campaign (`redemption_window()`,
`issuance`, `console_path`, ...) or fetches the kind it works on by its class
(`campaign_store.get_campaign_of(conn, slug, PurchaseOffer)`), so a new kind is a module
here and one line in the registry (promo/campaigns/__init__.py), and every service finds
out what it supports by asking it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

from promo.campaigns.terms import Terms
from promo.catalog import Sku
from promo.timeutil import DayWindow


class Issuance(Enum):
    """Who takes codes from a kind's pool. It decides how the books balance (reconciliation),
    whether the campaign's redemption counter counts every issued code (stock) and which
    email hands the codes out."""

    REDEMPTION = "redemption"  # a consumer's accepted redemption takes one code (R-X6); a reward_code email
    DONATION = "donation"  # a granted donation request line takes one licence key (R-N2); a donation_keys email


class CampaignKind(Protocol):
    """A parsed campaign of any kind (PurchaseOffer, DonationProgram)."""

    issuance: ClassVar[Issuance]

    @property
    def kind(self) -> str:
        """The kind's name in campaign files and the campaigns table."""

    @property
    def slug(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def names(self) -> Mapping[str, str]: ...

    @property
    def timezone(self) -> str: ...

    @property
    def tz(self) -> ZoneInfo: ...

    @property
    def code_pattern(self) -> str:
        """What every code in its pool looks like (import_codes checks each line)."""

    @property
    def code_products(self) -> tuple[str, ...]:
        """Its code pools: empty for one pool for the campaign, else one pool per SKU (code
        files then name each code's SKU)."""

    @property
    def code_expires_at(self) -> datetime:
        """The expiry a code gets when its file gives none."""

    @property
    def low_stock_threshold(self) -> int | None:
        """Marketers are emailed once when available codes fall below it (None: no alert)."""

    @property
    def terms(self) -> Terms | None:
        """Its own terms, versioned when saved (R-X22); None: it has none of its own."""

    @property
    def console_path(self) -> str:
        """The console page where staff manage it."""

    def redemption_window(self) -> DayWindow | None:
        """When consumers may redeem it (offer pages, the redemption API, dry runs, the
        dashboard); None: it is not redeemed, so it has no window, no run-out projection and
        is never scheduled or ended."""

    def schedule(self) -> str:
        """When it runs, in one line (the CLI's campaign list)."""

    def name_in(self, lang: str) -> str: ...

    def to_dict(self) -> dict[str, Any]:
        """The campaign file's content (export writes it, import reads it back)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], catalog: Mapping[str, Sku]) -> CampaignKind: ...
