"""Replay: run a campaign's rules (as saved, or edited and not yet saved) over the claims
already recorded, and count the decisions that would change, before a change is saved.

Each recorded attempt is rebuilt from its activation record and judged at the instant it
was made, with the same `campaign.evaluate` a redemption uses. Only the campaign's own
rules are compared (windows, countries, products); limits, stock and key ownership
depend on what happened around the attempt and are not the campaign definition's to change."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from promo.campaigns.purchase_offer import Claim
from promo.catalog import load_catalog
from promo.identifiers import mask_product_key
from promo.timeutil import from_db_time, moment_from_db

CAMPAIGN_RULES = frozenset({"R-X1", "R-X2", "R-X3", "R-X4", "R-X7"})
MAX_ATTEMPTS = 100_000  # the most recent attempts; a bound on how long a replay may take
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class Change:
    attempt_id: int
    attempted_at: str
    product_key: str  # masked
    sku: str
    country: str
    recorded: tuple[str, ...]  # the campaign rules that failed then ('' = passed)
    proposed: tuple[str, ...]

    @property
    def direction(self) -> str:
        if not self.recorded:
            return "would now be refused"
        return "would now pass" if not self.proposed else "fails other rules"


@dataclass
class ReplayReport:
    considered: int = 0
    without_evidence: int = 0  # no activation record: nothing to replay
    changed: int = 0
    newly_refused: int = 0
    newly_allowed: int = 0
    examples: list[Change] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"considered": self.considered, "without_evidence": self.without_evidence, "changed": self.changed,
                "newly_refused": self.newly_refused, "newly_allowed": self.newly_allowed, "truncated": self.truncated,
                "examples": [{"attempt": c.attempt_id, "attempted_at": c.attempted_at, "product_key": c.product_key,
                              "sku": c.sku, "country": c.country, "recorded": list(c.recorded),
                              "proposed": list(c.proposed), "change": c.direction} for c in self.examples]}


def replay(conn: sqlite3.Connection, campaign_id: int, proposed: Any, *, limit: int = MAX_ATTEMPTS) -> ReplayReport:
    catalog = load_catalog(conn)
    report = ReplayReport()
    rows = conn.execute(
        "SELECT a.id, a.account_email, a.product_key, a.failed_rules, a.attempted_at,"
        " v.sku, v.country, COALESCE(v.activation_country, v.country) AS activation_country, v.purchased_at, v.activated_at"
        " FROM redemption_attempts a LEFT JOIN activations v ON v.product_key = a.product_key"
        " WHERE a.campaign_id = :c ORDER BY a.id DESC LIMIT :limit",
        {"c": campaign_id, "limit": limit + 1},
    )
    for row in rows:
        if report.considered + report.without_evidence == limit:
            report.truncated = True
            break
        if row["sku"] is None or row["sku"] not in catalog:
            report.without_evidence += 1
            continue
        report.considered += 1
        claim = Claim(account=row["account_email"], product_key=row["product_key"], sku=catalog[row["sku"]],
                      purchase_country=row["country"], activation_country=row["activation_country"],
                      purchased_at=moment_from_db(row["purchased_at"]),
                      activated_at=moment_from_db(row["activated_at"]))
        recorded = tuple(sorted(CAMPAIGN_RULES.intersection(row["failed_rules"].split())))
        now = tuple(sorted(CAMPAIGN_RULES.intersection(proposed.evaluate(claim, from_db_time(row["attempted_at"])).rules)))
        if recorded == now:
            continue
        report.changed += 1
        report.newly_refused += int(not recorded)
        report.newly_allowed += int(not now)
        if len(report.examples) < MAX_EXAMPLES:
            report.examples.append(Change(row["id"], row["attempted_at"], mask_product_key(row["product_key"]),
                                          row["sku"], row["country"], recorded, now))
    return report
