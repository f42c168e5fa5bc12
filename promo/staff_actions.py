"""Staff actions for auditors: the audit events other than consumer redemptions (campaign
changes, imports, voids, review decisions, sign-ins, lockouts, mail failures), filtered by
actor, tag, subject and a date range in a stated zone, paged by key, exported whole.

Every filter is served by a partial index of migration 0021 that holds only these events,
so redemption events (nearly all of the log) cost nothing here and nothing to write."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from promo.errors import FieldError, InputError
from promo.event_changes import Change, changes_of, details_of
from promo.paging import Keyset, Page
from promo.timeutil import db_time, from_db_time, query_day_range

# Must read exactly as in the partial indexes' WHERE (migration 0021), or they are not used.
STAFF_EVENTS = "tag NOT LIKE 'redemption:%'"
MAX_TEXT = 200
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)  # far enough, and no overflow at a zone's edge


def prefix_range(prefix: str) -> tuple[str, str]:
    """[low, high) holding every text that starts with `prefix` (binary collation), so a
    "starts with" filter is an index range, with no LIKE wildcards to escape."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class ActionFilter:
    actor: str | None = None  # each text filter: "starts with"
    tag: str | None = None
    subject: str | None = None
    since: date | None = None  # inclusive days in `zone`
    until: date | None = None
    zone: str = "UTC"

    @classmethod
    def from_query(cls, query: dict[str, str]) -> ActionFilter:
        errors: list[FieldError] = []
        texts: dict[str, str | None] = {}
        for name in ("actor", "tag", "subject"):
            value = (query.get(name) or "").strip()
            if len(value) > MAX_TEXT or not value.isprintable() or "\U0010ffff" in value:
                errors.append(FieldError(name, f"must be printable text of at most {MAX_TEXT} characters"))
                value = ""
            texts[name] = value or None
        zone_name = (query.get("zone") or "").strip() or "UTC"
        try:
            ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(FieldError("zone", "must be a time zone name such as UTC or Europe/Copenhagen"))
            zone_name = "UTC"
        since, until = query_day_range(query, errors, first=FIRST_DAY, last=LAST_DAY, example="2026-03-01")
        if errors:
            raise InputError(errors)
        return cls(texts["actor"], texts["tag"], texts["subject"], since, until, zone_name)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def as_query(self) -> dict[str, str]:
        out = {k: str(v) for k, v in self.__dict__.items() if v and k != "zone"}
        if self.zone != "UTC":
            out["zone"] = self.zone
        return out

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [STAFF_EVENTS], {}
        for name in ("actor", "tag", "subject"):
            value = getattr(self, name)
            if value:
                clauses.append(f"{name} >= :{name}_low AND {name} < :{name}_high")  # name: one of three fixed columns
                params[f"{name}_low"], params[f"{name}_high"] = prefix_range(value)
        if self.since:
            clauses.append("created_at >= :since")
            params["since"] = db_time(datetime.combine(self.since, time(0), tzinfo=self.tz))
        if self.until:
            clauses.append("created_at < :until")
            params["until"] = db_time(datetime.combine(self.until + timedelta(days=1), time(0), tzinfo=self.tz))
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class StaffAction:
    seq: int
    created_at: datetime
    tag: str
    actor: str
    subject: str
    ip: str | None
    data: dict[str, Any]
    raw: str  # the data as stored (canonical JSON)

    @property
    def changes(self) -> list[Change]:
        return changes_of(self.data)

    @property
    def details(self) -> list[tuple[str, str]]:
        return details_of(self.data)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "created_at": self.created_at.isoformat().replace("+00:00", "Z"), "tag": self.tag,
                "actor": self.actor, "subject": self.subject, "ip": self.ip, "data": self.data}


def actions_sql(flt: ActionFilter, keyset: Keyset) -> tuple[str, dict[str, Any]]:
    """The query for one page (tests read its plan: each filter must be an index range)."""
    where, params = flt.where()
    condition, order, page_params = keyset.sql("seq")
    sql = ("SELECT seq, tag, actor, subject, ip, data, created_at FROM audit_events"
           f" WHERE {where} AND {condition} ORDER BY {order} LIMIT :keyset_limit")  # fixed clauses; values are parameters
    return sql, {**params, **page_params}


def query_actions(conn: sqlite3.Connection, flt: ActionFilter, keyset: Keyset) -> Page[StaffAction]:
    """One page of staff actions, newest first."""
    sql, params = actions_sql(flt, keyset)
    actions = [StaffAction(r["seq"], from_db_time(r["created_at"]), r["tag"], r["actor"], r["subject"], r["ip"],
                           json.loads(r["data"]), r["data"]) for r in conn.execute(sql, params)]
    return keyset.page(actions, lambda action: action.seq)


def staff_actors(conn: sqlite3.Connection) -> list[str]:
    """Actor names to suggest in the filter: every staff account, and the system."""
    return ["system", "cli"] + [f"staff:{r[0]}" for r in conn.execute("SELECT email FROM staff ORDER BY email")]
