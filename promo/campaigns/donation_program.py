"""Campaign kind "donation program": software donations to validated nonprofits
(RULES.md R-N1 … R-N11, R-V1 … R-V8). The rules here are pure, like the purchase offer's:
they take what is known and the instant, and return every failure with its rule id.
Storage and the transactions are in the promo/nonprofit/ package; the campaign file is read and
written in donation_program_file.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from promo.campaigns.donation_program_file import program_to_dict, read_program
from promo.campaigns.kind import Issuance
from promo.campaigns.rules import Failure
from promo.catalog import Sku
from promo.timeutil import zone

KIND = "donation_program"
KEY_PATTERN = r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$"
NEVER = date(9999, 12, 31)  # licence keys do not expire

# R-N5: missions that serve the local community.
MISSIONS = ("relieving_poverty", "advancing_education", "social_welfare", "preserving_culture", "environment",
            "human_rights", "civil_society")
# R-N6: ineligible organisation types, and the health-care organisations that are eligible.
INELIGIBLE_TYPES = {
    "government": "government bodies",
    "educational_institution": "educational institutions",
    "library": "libraries",
    "trade_association": "professional trade associations",
    "sports": "professional and semi-professional sports organisations",
    "political": "political organisations",
    "labour": "labour organisations",
    "fraternal": "fraternal organisations",
    "refurbisher": "refurbishers (they have a separate program)",
}
ELIGIBLE_TYPES = ("charity", "association", "foundation", "community_group", "faith_based", "healthcare")
ORG_TYPES = ELIGIBLE_TYPES + tuple(INELIGIBLE_TYPES)
HEALTH_EXCEPTIONS = ("community_clinic", "behavioural_health_clinic", "womens_health_clinic", "hospice",
                     "emergency_services", "blood_tissue_organ_bank")


@dataclass(frozen=True)
class Registration:
    """What an organisation states when it registers."""

    name: str
    short_name: str
    country: str
    registration_number: str
    mission: str
    org_type: str
    health_kind: str | None
    non_discrimination: bool


def registration_failures(reg: Registration) -> list[Failure]:
    """R-N5, R-N6, R-N7: why this organisation cannot be approved (empty: it can)."""
    failures = []
    if reg.mission not in MISSIONS:
        failures.append(Failure("R-N5", "mission_not_eligible", f"the mission {reg.mission!r} is not one of the program's "
                                "missions serving the local community", {"mission": reg.mission}))
    if reg.org_type in INELIGIBLE_TYPES:
        failures.append(Failure("R-N6", "organisation_type_not_eligible",
                                f"{INELIGIBLE_TYPES[reg.org_type]} are not eligible", {"org_type": reg.org_type}))
    elif reg.org_type == "healthcare" and reg.health_kind not in HEALTH_EXCEPTIONS:
        failures.append(Failure("R-N6", "healthcare_not_eligible",
                                "health-care organisations are eligible only as independent nonprofit community, "
                                "behavioural or women's health clinics, hospices, emergency services, or "
                                "blood, tissue or organ banks", {"org_type": reg.org_type}))
    if not reg.non_discrimination:
        failures.append(Failure("R-N7", "no_non_discrimination_declaration",
                                "the organisation must declare that it has no discriminatory policy"))
    return failures


# ---- states (R-N4, R-N7, R-V7) ---------------------------------------------------------------
# A donation request that passes every rule is requested (waiting for staff) or held (waiting,
# with a reason the requester sees) until it is granted or refused; a waiting request reserves
# its quantities in the cycle's allocation (R-N2), so granting every waiting request at once can
# never exceed a limit. Granted and refused are final: what was granted stays granted (R-V7).
REQUEST_MOVES: dict[str, tuple[str, ...]] = {"requested": ("held", "granted", "refused"), "held": ("granted", "refused")}
WAITING = ("requested", "held")
# An approved organisation's standing (the first review, pending -> approved or rejected, is
# decided apart): a later review (its requests wait) ends cleared (approved again) or with the
# approval revoked, for good (R-N7).
STANDING_MOVES: dict[str, tuple[str, ...]] = {"approved": ("under_review", "revoked"), "under_review": ("approved", "revoked")}


def request_move_failures(current: str, target: str) -> list[Failure]:
    """R-N4/R-V7: which staff decisions a request in `current` allows (empty: this one is allowed)."""
    if target in REQUEST_MOVES.get(current, ()):
        return []
    if current == "granted":
        why = "a granted donation stays granted (R-V7): nothing is taken back"
    elif current == "refused":
        why = "a refused request stays refused; the organisation may send a new request"
    else:
        why = "a held request can only be granted or refused"
    return [Failure("R-N4", "request_decided", f"this request is {current}, so it cannot be {target}: {why}",
                    {"status": current, "decision": target})]


_STANDING_VERB = {"approved": "cleared", "rejected": "rejected", "under_review": "put under review", "revoked": "revoked"}


def standing_move_failures(current: str, target: str) -> list[Failure]:
    """R-N4/R-N7: which changes of standing an organisation in `current` allows."""
    if target in STANDING_MOVES.get(current, ()):
        return []
    if current in STANDING_MOVES:
        then = f"from {current.replace('_', ' ')} it can only be " + " or ".join(_STANDING_VERB[t] for t in STANDING_MOVES[current])
    else:
        then = {"revoked": "a revoked approval is final", "rejected": "a rejected registration is final",
                "pending": "its registration waits for review: approve or reject it first"}.get(current, "")
    return [Failure("R-N7" if current == "revoked" else "R-N4", "standing_unchanged",
                    f"this organisation is {current.replace('_', ' ')}, so it cannot be {_STANDING_VERB[target]}: {then}",
                    {"status": current, "decision": target})]


@dataclass(frozen=True)
class Limits:
    """R-N2, per organisation and cycle."""

    each_desktop_or_cal: int = 50
    windows_server_standard: int = 25
    other_servers_total: int = 5


@dataclass(frozen=True)
class Allowance:
    """What is left of one limit: a product's own (desktop, CAL) or a group's (servers)."""

    label: str
    skus: tuple[str, ...]
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class DonationProgram:
    slug: str
    name: str
    timezone: str
    program_start: date  # R-N1: cycles start with the first request after this day
    products: tuple[str, ...]  # donation SKUs offered (each has a product class)
    limits: Limits = Limits()
    cycle_years: int = 2
    code_days: int = 60  # R-V3
    return_days: int = 60  # R-N9
    names: Mapping[str, str] = field(default_factory=dict)
    grant: str = "at_once"  # donation_program_file.GRANT_MODES
    terms_version: str = "1"  # R-N10: the terms of use a request accepts (stored with it)
    code_pattern: str = KEY_PATTERN
    kind: str = KIND
    issuance: ClassVar[Issuance] = Issuance.DONATION  # staff grant licence keys to requests (R-N4)
    console_path: ClassVar[str] = "/console/nonprofit/"

    def name_in(self, lang: str) -> str:
        return self.names.get(lang, self.name)

    def redemption_window(self) -> None:
        """Nobody redeems a program: organisations ask through /nonprofit/, staff grant."""
        return None

    def schedule(self) -> str:
        return f"opens after {self.program_start}"

    @property
    def low_stock_threshold(self) -> None:
        """Licence keys have no low-stock alert."""
        return None

    @property
    def terms(self) -> None:
        """A request accepts the program's terms of use by version (terms_version, R-N10); the
        program keeps no terms text of its own."""
        return None

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def code_products(self) -> tuple[str, ...]:
        """One pool of licence keys per product: code files name each key's SKU."""
        return self.products

    @property
    def code_expires_at(self) -> datetime:
        """Licence keys in the pool do not expire (import_codes' default expiry)."""
        return datetime.combine(NEVER, time(0), tzinfo=UTC)

    @property
    def opens_at(self) -> datetime:
        """R-N1: "after 2011-07-27": from the start of the next day, in the program's zone."""
        return datetime.combine(self.program_start + timedelta(days=1), time(0), tzinfo=self.tz).astimezone(UTC)

    def cycle_end(self, starts_at: datetime) -> datetime:
        """Two years after a cycle's start, same local date and time (29 February -> 28th)."""
        local = starts_at.astimezone(self.tz)
        try:
            later = local.replace(year=local.year + self.cycle_years)
        except ValueError:
            later = local.replace(year=local.year + self.cycle_years, day=28)
        return later.astimezone(UTC)

    def allowances(self, catalog: Mapping[str, Sku], used: Mapping[str, int]) -> list[Allowance]:
        """Every R-N2 limit with what this cycle has used of it."""
        out = []
        for sku in self.products:
            if catalog[sku].product_class in ("desktop", "cal"):
                out.append(Allowance(catalog[sku].name, (sku,), self.limits.each_desktop_or_cal, used.get(sku, 0)))
        for klass, label, limit in (("windows_server_standard", "Windows Server Standard", self.limits.windows_server_standard),
                                    ("server", "other server products", self.limits.other_servers_total)):
            skus = tuple(s for s in self.products if catalog[s].product_class == klass)
            if skus:
                out.append(Allowance(label, skus, limit, sum(used.get(s, 0) for s in skus)))
        return out

    def allocation_failures(self, catalog: Mapping[str, Sku], used: Mapping[str, int],
                            requested: Mapping[str, int]) -> list[Failure]:
        """R-N2: every limit the request would exceed (the request is refused whole)."""
        failures = []
        for allowance in self.allowances(catalog, used):
            wanted = sum(requested.get(s, 0) for s in allowance.skus)
            if wanted > allowance.remaining:
                failures.append(Failure("R-N2", "allocation_exceeded",
                                        f"{wanted} requested of {allowance.label}, but {allowance.remaining} of "
                                        f"{allowance.limit} are left in this cycle",
                                        {"what": allowance.label, "requested": wanted, "remaining": allowance.remaining,
                                         "limit": allowance.limit}))
        return failures

    def request_failures(self, now: datetime) -> list[Failure]:
        if now < self.opens_at:
            return [Failure("R-N1", "program_not_open", f"donation requests open after {self.program_start}")]
        return []

    def code_failures(self, *, expires_at: datetime, replaced: bool, now: datetime) -> list[Failure]:
        """R-V3/R-V4: a code works until it expires or is replaced by a refresh."""
        if replaced:
            return [Failure("R-V4", "code_replaced", "this validation code was replaced by a newer one")]
        if now >= expires_at:
            return [Failure("R-V3", "code_expired", "this validation code has expired (codes are valid 60 days)")]
        return []

    def return_failures(self, *, received_at: datetime, now: datetime, not_installed: bool) -> list[Failure]:
        """R-N9: within `return_days` of receipt, and only if nothing was installed."""
        failures = []
        if now >= received_at + timedelta(days=self.return_days):
            failures.append(Failure("R-N9", "return_too_late",
                                    f"a return must be asked for less than {self.return_days} days after the products were received"))
        if not not_installed:
            failures.append(Failure("R-N9", "return_installed", "products that were installed cannot be returned"))
        return failures

    # ---- the campaign file (donation_program_file.py reads and writes it) -----------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], catalog: Mapping[str, Sku]) -> DonationProgram:
        return read_program(cls, Limits, data, catalog)

    def to_dict(self) -> dict[str, Any]:
        return program_to_dict(self)
