"""What a redemption is asked and what it answers: RedeemRequest (checked and normalised
before any transaction) and RedemptionResult (what the decision log stores and a replay of
the same idempotency key gives back). promo.redemption decides; this module holds no SQL."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from promo.campaigns.rules import Decision
from promo.countries import normalize_country
from promo.errors import InputError
from promo.identifiers import mask_code, normalize_email, normalize_product_key
from promo.timeutil import iso


@dataclass(frozen=True)
class RedeemRequest:
    campaign: str
    account_email: str
    product_key: str
    terms_accepted: bool
    declared_country: str | None = None
    idempotency_key: str | None = None
    client_ip: str | None = None
    locale: str = "en"  # the language of the email
    # R-X13: where the customer lives (for a business: its seat); it chooses the sponsor, the
    # law and the support contact. None: the country of purchase (see residence_of).
    residence_country: str | None = None

    def normalized(self) -> RedeemRequest:
        """Check and normalise input before taking the write lock; InputError on bad input."""
        errors = []
        values: dict[str, Any] = {}
        for name, check in (
            ("account_email", normalize_email),
            ("product_key", normalize_product_key),
            ("declared_country", lambda v, f: normalize_country(v, f) if v else None),
            ("residence_country", lambda v, f: normalize_country(v, f) if v else None),
        ):
            try:
                values[name] = check(getattr(self, name), name)
            except InputError as exc:
                errors.extend(exc.errors)
        key = (self.idempotency_key or "").strip() or None
        if key is not None and len(key) > 200:
            errors.append(InputError.one("idempotency_key", "is longer than 200 characters").errors[0])
        if errors:
            raise InputError(errors)
        return replace(self, idempotency_key=key, **values)


@dataclass(frozen=True)
class RedemptionResult:
    outcome: str  # "redeemed" | "refused"
    decision: Decision
    redemption_id: int | None = None
    code: str | None = None  # the whole code: show it to its owner only
    code_expires_at: datetime | None = None
    replayed: bool = False

    @property
    def redeemed(self) -> bool:
        return self.outcome == "redeemed"

    def as_dict(self, *, reveal_code: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, **self.decision.as_dict()}
        if self.redemption_id is not None:
            out["redemption_id"] = self.redemption_id
        if self.code is not None:
            out["code"] = self.code if reveal_code else mask_code(self.code)
            out["code_expires_at"] = iso(self.code_expires_at) if self.code_expires_at else None
        if self.replayed:
            out["replayed"] = True
        return out
