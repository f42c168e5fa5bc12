"""Audit event data as people read it: field, before, after (issue 19, item 2).

Events record changes as {"changes": {field: [before, after]}} (campaign_store.diff, staff
roles, states) or as {"before": {...}, "after": {...}}; everything else is plain details.
Nested values are summarised ("38 items: AE, AR, AT, …"), and a list that changed says
what was added and removed, so a campaign change reads in a few lines, not a screen."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_TEXT = 80
MAX_ITEMS = 6


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str
    note: str = ""  # for lists: what was added and removed


def summary(value: Any) -> str:
    """A value in a line: short text whole, long text cut, nested values counted."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        shown = ", ".join(summary(v) for v in value[:MAX_ITEMS])
        more = ", …" if len(value) > MAX_ITEMS else ""
        return f"{len(value)} item{'s' if len(value) != 1 else ''}: {shown}{more}" if value else "none"
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:MAX_ITEMS])
        return f"{len(value)} field{'s' if len(value) != 1 else ''}: {keys}{', …' if len(value) > MAX_ITEMS else ''}"
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _list_note(before: Any, after: Any) -> str:
    if not (isinstance(before, list) and isinstance(after, list)):
        return ""
    old, new = [json.dumps(v, sort_keys=True) for v in before], [json.dumps(v, sort_keys=True) for v in after]
    added = [after[i] for i, v in enumerate(new) if v not in old]
    removed = [before[i] for i, v in enumerate(old) if v not in new]
    parts = []
    if added:
        parts.append("added " + summary(added).split(": ", 1)[-1])
    if removed:
        parts.append("removed " + summary(removed).split(": ", 1)[-1])
    return "; ".join(parts) or "reordered"


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changes_of(data: dict[str, Any]) -> list[Change]:
    """The field-level changes an event records, in field order."""
    pairs: dict[str, tuple[Any, Any]] = {}
    recorded = data.get("changes")
    if isinstance(recorded, dict):
        for name, value in recorded.items():
            if isinstance(value, list | tuple) and len(value) == 2:
                pairs[str(name)] = (value[0], value[1])
    before, after = data.get("before"), data.get("after")
    if isinstance(before, dict) or isinstance(after, dict):
        old = _flatten(before if isinstance(before, dict) else {})
        new = _flatten(after if isinstance(after, dict) else {})
        for name in sorted(old.keys() | new.keys()):
            if old.get(name) != new.get(name):
                pairs[name] = (old.get(name), new.get(name))
    return [Change(name, summary(b), summary(a), _list_note(b, a)) for name, (b, a) in sorted(pairs.items())]


def details_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The event's other data, one summarised line per field."""
    taken = {"changes", "before", "after"} if changes_of(data) else set()
    return [(str(k), summary(v)) for k, v in data.items() if k not in taken]
