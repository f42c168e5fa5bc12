"""Finding the nonprofit program's records from the console (issue 19, item 8): every
organisation, by status or by what it is called, and every donation request, a page at a
time. (promo/nonprofit.py keeps the rules; this module only lists.)"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from promo.donations import DonationRequest, get_request
from promo.errors import FieldError, InputError
from promo.nonprofit import _ORG_SELECT, STANDING_SQL, Organisation, _organisation
from promo.paging import Keyset, Page

ORG_STATUSES = ("pending", "approved", "under_review", "revoked", "rejected")
MAX_SEARCH = 100


def _like(text: str) -> str:
    """`text` anywhere, as a LIKE pattern with its wildcards taken literally (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class RecordQuery:
    q: str = ""
    status: str = ""

    @classmethod
    def from_query(cls, query: dict[str, str], statuses: tuple[str, ...] = ()) -> RecordQuery:
        errors = []
        q, status = (query.get("q") or "").strip(), (query.get("status") or "").strip()
        if len(q) > MAX_SEARCH or not q.isprintable():
            errors.append(FieldError("q", f"search for printable text of at most {MAX_SEARCH} characters"))
        if status and status not in statuses:
            errors.append(FieldError("status", f"must be one of {', '.join(statuses)}"))
        if errors:
            raise InputError(errors)
        return cls(q, status)


def organisations_page(conn: sqlite3.Connection, query: RecordQuery, keyset: Keyset) -> Page[Organisation]:
    """Organisations, newest first, by status and by name, short name, registration number
    or holder's address."""
    condition, order, params = keyset.sql("id")
    rows = conn.execute(
        _ORG_SELECT + f" WHERE {STANDING_SQL[query.status]} AND (:q = '' OR name LIKE :like ESCAPE '\\'"
        " OR short_name LIKE :like ESCAPE '\\' OR registration_number LIKE :like ESCAPE '\\'"
        f" OR holder_email LIKE :like ESCAPE '\\') AND {condition} ORDER BY {order} LIMIT :keyset_limit",  # fixed clauses
        {"q": query.q, "like": _like(query.q), **params}).fetchall()
    return keyset.page([_organisation(r) for r in rows], lambda org: org.id)


def requests_page(conn: sqlite3.Connection, query: RecordQuery, keyset: Keyset) -> Page[DonationRequest]:
    """Donation requests, newest first, by the organisation's name or short name or the
    requester's address; each with its lines (keys masked where shown)."""
    condition, order, params = keyset.sql("r.id")
    ids = [row[0] for row in conn.execute(
        "SELECT r.id FROM donation_requests r JOIN organisations o ON o.id = r.organisation_id"
        " WHERE (:q = '' OR o.name LIKE :like ESCAPE '\\' OR o.short_name LIKE :like ESCAPE '\\'"
        f" OR r.account_email LIKE :like ESCAPE '\\') AND {condition} ORDER BY {order} LIMIT :keyset_limit",  # fixed clauses
        {"q": query.q, "like": _like(query.q), **params})]
    return keyset.page([get_request(conn, request_id) for request_id in ids], lambda request: request.id)
