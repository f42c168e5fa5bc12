"""Decisions and the rule helpers shared by campaign kinds.

Rules are pure: they take (campaign, claim, now) and do no I/O. A decision lists *every*
failing rule, each with its id from ../shared/RULES.md, a stable reason key (for
translations) and an English message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Reasons that are not business rules of the documents but still refuse a claim.
STOCK = "STOCK"  # the code pool is empty, or the campaign's total cap is reached
CAMPAIGN = "CAMPAIGN"  # the campaign is a draft or paused by its marketers


@dataclass(frozen=True)
class Failure:
    rule: str
    reason: str
    message: str
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "reason": self.reason, "message": self.message, "params": dict(self.params)}


@dataclass(frozen=True)
class Decision:
    failures: tuple[Failure, ...] = ()

    @property
    def eligible(self) -> bool:
        return not self.failures

    @property
    def rules(self) -> list[str]:
        return sorted({f.rule for f in self.failures})

    def plus(self, more: Iterable[Failure]) -> Decision:
        return Decision(self.failures + tuple(more))

    def as_dict(self) -> dict[str, Any]:
        return {
            "eligible": self.eligible,
            "failed_rules": self.rules,
            "failures": [f.as_dict() for f in self.failures],
        }


def matches_any(attributes: Mapping[str, str], matchers: Iterable[Mapping[str, tuple[str, ...]]]) -> bool:
    """An attribute matcher matches when every attribute it names has one of its values."""
    return any(all(attributes[name] in values for name, values in m.items()) for m in matchers)
