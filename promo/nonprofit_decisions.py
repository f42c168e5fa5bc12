"""Staff decisions in the nonprofit program, each in the caller's transaction and audited
with who and why:

- on a waiting donation request (R-N4: the sponsor may grant or refuse any request at any
  time): grant it, hold it, or refuse it; the requester is told the reason (page and email);
- on an approved organisation's standing: review it again (its requests wait, held, until
  the review ends), clear it (the waiting requests go on), or revoke its approval (R-N7, a
  discriminatory policy found later): no more requests, codes or partner confirmations;
  what it already received stays (R-V7); its representatives are emailed why.

The states and the moves between them are in promo/campaigns/donation_program.py."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from babel.core import get_global

from promo.audit import append_event
from promo.campaigns.donation_program import request_move_failures, standing_move_failures
from promo.campaigns.rules import STOCK, Failure
from promo.donations import DonationRequest, find_keys, get_request, hand_over_keys, tell_requester
from promo.errors import InputError
from promo.i18n import languages
from promo.nonprofit import REVOKED, NotAllowed, Organisation, get_organisation, program, require_reason
from promo.outbox import DEFAULT_MAIL_DOMAIN, enqueue
from promo.timeutil import db_time

REVOKED_EMAIL = "organisation_revoked"
REQUEST_DECISIONS = {"grant": "granted", "hold": "held", "refuse": "refused"}
STANDING_DECISIONS = {"review": "under_review", "clear": "approved", "revoke": "revoked"}
UNDER_REVIEW = Failure("R-N4", "organisation_under_review",
                       "the organisation is under review: its requests wait until the review ends")


class WrongState(NotAllowed):
    """The decision does not fit where the request or organisation stands now (409)."""

    status = 409


# ---- donation requests ------------------------------------------------------------------------

def decide_request(conn: sqlite3.Connection, request_id: int, *, decision: str, reviewer: str, reason: str, now: datetime,
                   ip: str | None, mail_domain: str = DEFAULT_MAIL_DOMAIN) -> DonationRequest:
    """Grant, hold or refuse a waiting request. A hold or refusal needs a reason, which the
    requester reads on the request's page and in an email; a grant sends the keys."""
    if decision not in REQUEST_DECISIONS:
        raise InputError.one("decision", "must be grant, hold or refuse")
    request = get_request(conn, request_id)
    target = REQUEST_DECISIONS[decision]
    failures = request_move_failures(request.status, target)
    if failures:
        raise WrongState("decision", failures)
    org = get_organisation(conn, request.organisation_id)
    actor = f"staff:{reviewer}"
    if target == "granted":
        _grant(conn, request, org, actor=actor, now=now, ip=ip, mail_domain=mail_domain)
    else:
        why = require_reason(reason, f"the request is {target} (the requester is told)")
        _hold_or_refuse(conn, request, target, "staff" if target == "held" else None, why, actor=actor, now=now, ip=ip,
                        mail_domain=mail_domain)
    return get_request(conn, request_id)


def _grant(conn: sqlite3.Connection, request: DonationRequest, org: Organisation, *, actor: str, now: datetime,
           ip: str | None, mail_domain: str) -> None:
    if org.standing in ("under_review", "revoked"):  # a revocation refuses waiting requests: kept as a guard
        raise WrongState("decision", [UNDER_REVIEW if org.standing == "under_review" else REVOKED])
    campaign_id, _ = program(conn)
    keys, missing = find_keys(conn, campaign_id, {item.sku: item.quantity for item in request.items})
    if missing:  # the request keeps waiting, its reservation with it
        raise WrongState("decision", [Failure(STOCK, "no_keys_left", f"no licence keys are left for {missing}; upload "
                                              "keys first, then grant the request", {"sku": missing})])
    conn.execute("UPDATE donation_requests SET decided_by = :who, decided_at = :now WHERE id = :id",
                 {"who": actor, "now": db_time(now), "id": request.id})
    hand_over_keys(conn, request.id, keys, now=now, actor=actor, ip=ip, mail_domain=mail_domain, data={})


def _hold_or_refuse(conn: sqlite3.Connection, request: DonationRequest, target: str, cause: str | None, why: str | None, *,
                    actor: str, now: datetime, ip: str | None, mail_domain: str) -> None:
    """A refusal gives the reservation back (refused requests do not count, R-N2)."""
    conn.execute("UPDATE donation_requests SET status = :s, hold_cause = :cause, reason = :why, decided_by = :who,"
                 " decided_at = :now WHERE id = :id",
                 {"s": target, "cause": cause, "why": why, "who": actor, "now": db_time(now), "id": request.id})
    tell_requester(conn, get_request(conn, request.id), now=now, mail_domain=mail_domain)
    append_event(conn, tag=f"nonprofit:donation:{target}", actor=actor, subject=f"organisation:{request.organisation_id}",
                 ip=ip, at=now, data={"request": request.id, "changes": {"status": [request.status, target]},
                                      "cause": cause, "reason": why})


# ---- an organisation's standing ---------------------------------------------------------------

def change_standing(conn: sqlite3.Connection, org_id: int, *, decision: str, reviewer: str, reason: str, now: datetime,
                    ip: str | None, mail_domain: str = DEFAULT_MAIL_DOMAIN) -> Organisation:
    """Review an approved organisation again, clear it, or revoke its approval (audited)."""
    if decision not in STANDING_DECISIONS:
        raise InputError.one("decision", "must be review, clear or revoke")
    org = get_organisation(conn, org_id)
    target = STANDING_DECISIONS[decision]
    failures = standing_move_failures(org.standing, target)
    if failures:
        raise WrongState("decision", failures)
    actor = f"staff:{reviewer}"
    changes = {"standing": [org.standing, target]}
    if target == "under_review":
        note = require_reason(reason, "the organisation is reviewed again (for staff)")
        conn.execute("UPDATE organisations SET under_review_since = :now, review_note = :note WHERE id = :id",
                     {"now": db_time(now), "note": note, "id": org_id})
        append_event(conn, tag="nonprofit:organisation:under_review", actor=actor, subject=f"organisation:{org_id}", ip=ip,
                     at=now, data={"changes": changes, "reason": note})
    elif target == "approved":
        conn.execute("UPDATE organisations SET under_review_since = NULL, review_note = NULL WHERE id = :id", {"id": org_id})
        append_event(conn, tag="nonprofit:organisation:cleared", actor=actor, subject=f"organisation:{org_id}", ip=ip,
                     at=now, data={"changes": changes, "reason": reason.strip() or None})
        _release_after_review(conn, org_id, actor=actor, now=now, ip=ip, mail_domain=mail_domain)
    else:
        _revoke(conn, org, require_reason(reason, "the approval is revoked (its representatives are told)"), actor=actor,
                reviewer=reviewer, now=now, ip=ip, mail_domain=mail_domain)
    return get_organisation(conn, org_id)


def _release_after_review(conn: sqlite3.Connection, org_id: int, *, actor: str, now: datetime, ip: str | None,
                          mail_domain: str) -> None:
    """The review is over: requests it held go on, oldest first, as a new request would:
    granted at once (their quantities were reserved, so together they fit every limit), or
    waiting for staff when the program says so. One whose keys have run out stays held."""
    campaign_id, prog = program(conn)
    held = [r[0] for r in conn.execute("SELECT id FROM donation_requests WHERE organisation_id = :o AND status = 'held'"
                                       " AND hold_cause = 'review' ORDER BY id", {"o": org_id})]
    for request_id in held:
        if prog.grant == "by_staff":
            conn.execute("UPDATE donation_requests SET status = 'requested', hold_cause = NULL WHERE id = :id",
                         {"id": request_id})
            append_event(conn, tag="nonprofit:donation:requested", actor=actor, subject=f"organisation:{org_id}", ip=ip,
                         at=now, data={"request": request_id, "changes": {"status": ["held", "requested"]},
                                       "cause": "review ended"})
            continue
        request = get_request(conn, request_id)
        keys, missing = find_keys(conn, campaign_id, {item.sku: item.quantity for item in request.items})
        if missing:
            _hold_or_refuse(conn, request, "held", "stock", None, actor=actor, now=now, ip=ip, mail_domain=mail_domain)
        else:
            hand_over_keys(conn, request_id, keys, now=now, actor=actor, ip=ip, mail_domain=mail_domain,
                           data={"cause": "review ended"})


def _revoke(conn: sqlite3.Connection, org: Organisation, why: str, *, actor: str, reviewer: str, now: datetime,
            ip: str | None, mail_domain: str) -> None:
    """R-N7 found later: the approval ends for good. Waiting requests are refused with the same
    reason; granted donations and their keys stay (R-V7); the holder and everyone who was
    given a validation code are emailed why."""
    conn.execute("UPDATE organisations SET revoked_at = :now, revoked_reason = :why, revoked_by = :who,"
                 " under_review_since = NULL WHERE id = :id", {"now": db_time(now), "why": why, "who": reviewer, "id": org.id})
    waiting = [r[0] for r in conn.execute("SELECT id FROM donation_requests WHERE organisation_id = :o"
                                          " AND status IN ('requested', 'held') ORDER BY id", {"o": org.id})]
    for request_id in waiting:
        _hold_or_refuse(conn, get_request(conn, request_id), "refused", None, why, actor=actor, now=now, ip=ip,
                        mail_domain=mail_domain)
    told = representatives(conn, org)
    lang = organisation_language(org.country)
    for address in told:
        enqueue(conn, template=REVOKED_EMAIL, recipient=address, subject_ref=f"organisation-revoked:{org.id}", at=now,
                locale=lang, domain=mail_domain, payload={"organisation": org.name, "reason": why})
    append_event(conn, tag="nonprofit:organisation:revoked", actor=actor, subject=f"organisation:{org.id}", ip=ip, at=now,
                 data={"changes": {"standing": [org.standing, "revoked"]}, "reason": why, "refused_requests": waiting,
                       "told": len(told)})


def representatives(conn: sqlite3.Connection, org: Organisation) -> list[str]:
    """The account holder and every person a validation code was issued to, once each."""
    issued = [r[0] for r in conn.execute("SELECT DISTINCT email FROM validation_codes WHERE organisation_id = :o ORDER BY email",
                                         {"o": org.id})]
    return [org.holder_email] + [e for e in issued if e != org.holder_email]


def organisation_language(country: str) -> str:
    """The language of an organisation's country when Promo speaks it (DK: da, NO: nb), else English:
    an email not prompted by a request has no reader's choice to follow."""
    likely = str(get_global("likely_subtags").get(f"und_{country}", ""))
    lang = likely.split("_")[0]
    return lang if lang in languages() else "en"

