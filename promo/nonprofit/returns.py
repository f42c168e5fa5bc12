"""Returns of donated products (R-N9): the requester asks within 60 days of receipt, for the
whole request and only if nothing was installed; staff complete it (the keys are voided
and the allocation restored) or reject it with a reason, and the requester is emailed.
Owns the `donation_returns` table; the request's side is promo/nonprofit/donations.py.
Each function runs inside the caller's transaction."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from promo.audit import append_event
from promo.errors import InputError, NotFound
from promo.nonprofit.donations import get_request, mark_returned
from promo.nonprofit.program import NotAllowed, program, require_reason
from promo.outbox import enqueue
from promo.timeutil import db_time

RETURN_EMAIL = "donation_return"


def ask_return(conn: sqlite3.Connection, request_id: int, *, account_email: str, not_installed: bool, now: datetime,
               ip: str | None) -> int:
    """A return covers the whole request (all its products), within 60 days of receipt, and
    only if nothing was installed. Staff complete it; then the allocation is restored."""
    request = get_request(conn, request_id)
    if request.account_email != account_email:
        raise NotFound("donation request", str(request_id))
    if request.granted_at is None:
        raise InputError.one("return", f"this request is {request.status}: only products that were received can be returned")
    if request.return_status in ("pending", "completed"):
        raise InputError.one("return", f"a return of this request is already {request.return_status}")
    _, prog = program(conn)
    failures = prog.return_failures(received_at=request.granted_at, now=now, not_installed=not_installed)
    if failures:
        raise NotAllowed("return", failures)
    return_id = conn.execute(
        "INSERT INTO donation_returns (request_id, declared_not_installed, status, created_at)"
        " VALUES (:r, 1, 'pending', :now)", {"r": request_id, "now": db_time(now)}).lastrowid
    assert return_id is not None
    append_event(conn, tag="nonprofit:return:asked", actor=f"account:{account_email}", subject=f"donation:{request_id}",
                 ip=ip, at=now, data={"return": return_id, "declared_not_installed": True,
                                      "lines": {line.sku: line.quantity for line in request.lines}})
    return return_id


def decide_return(conn: sqlite3.Connection, return_id: int, *, decision: str, reviewer: str, reason: str, now: datetime,
                  ip: str | None) -> None:
    """Complete (keys voided, allocation restored) or reject with a reason; the requester is emailed."""
    row = conn.execute("SELECT request_id, status FROM donation_returns WHERE id = :id", {"id": return_id}).fetchone()
    if row is None:
        raise NotFound("return", str(return_id))
    if row["status"] != "pending":
        raise InputError.one("decision", f"this return was already {row['status']}")
    request = get_request(conn, row["request_id"])
    if decision == "complete":
        status, why = "completed", None
        mark_returned(conn, request.id, now=now)
    elif decision == "reject":
        status, why = "rejected", require_reason(reason, "the return is rejected (the requester is told)")
    else:
        raise InputError.one("decision", "must be complete or reject")
    conn.execute("UPDATE donation_returns SET status = :s, reason = :r, reviewer_email = :who, decided_at = :now WHERE id = :id",
                 {"s": status, "r": why, "who": reviewer, "now": db_time(now), "id": return_id})
    enqueue(conn, template=RETURN_EMAIL, recipient=request.account_email, subject_ref=f"donation-return:{return_id}", at=now,
            locale=request.locale,
            payload={"request": request.id, "status": status, "reason": why, "organisation": request.organisation})
    append_event(conn, tag=f"nonprofit:return:{status}", actor=f"staff:{reviewer}", subject=f"donation:{request.id}", ip=ip,
                 at=now, data={"return": return_id, "changes": {"status": ["pending", status]}, "reason": why})


def pending_returns(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT t.id, t.request_id, t.created_at, r.account_email, r.granted_at AS received_at, o.name FROM donation_returns t"
        " JOIN donation_requests r ON r.id = t.request_id JOIN organisations o ON o.id = r.organisation_id"
        " WHERE t.status = 'pending' ORDER BY t.id").fetchall()
    return [dict(r) for r in rows]
