"""Staff decisions in the nonprofit program, each in the caller's transaction and audited
with who and why:

- on a waiting donation request (R-N4: the sponsor may grant or refuse any request at any
  time): grant it, hold it, or refuse it; the requester is told the reason (page and email);
- on an approved organisation's standing: review it again (its requests wait, held, until
  the review ends), clear it (the waiting requests go on), or revoke its approval (R-N7, a
  discriminatory policy found later): no more requests, codes or partner confirmations;
  what it already received stays (R-V7); its representatives are emailed why.

The states and the moves between them are in promo/campaigns/donation_program.py. Owns no
table: each change is written by the module that owns it (organisations, donations)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from promo.audit import append_event
from promo.campaigns.donation_program import request_move_failures, standing_move_failures
from promo.campaigns.rules import STOCK, Failure
from promo.errors import InputError
from promo.nonprofit.donations import (
    DonationRequest,
    find_keys,
    get_request,
    hand_over_keys,
    held_for_review,
    hold_or_refuse,
    mark_decided,
    wait_for_staff,
    waiting_requests,
)
from promo.nonprofit.organisations import (
    Organisation,
    end_review,
    get_organisation,
    organisation_language,
    revoke_approval,
    standing_failures,
    start_review,
)
from promo.nonprofit.program import NotAllowed, program, require_reason
from promo.nonprofit.validation_codes import representatives
from promo.outbox import enqueue

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
                   ip: str | None) -> DonationRequest:
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
        _grant(conn, request, org, actor=actor, now=now, ip=ip)
    else:
        why = require_reason(reason, f"the request is {target} (the requester is told)")
        hold_or_refuse(conn, request, target, "staff" if target == "held" else None, why, actor=actor, now=now, ip=ip)
    return get_request(conn, request_id)


def _grant(conn: sqlite3.Connection, request: DonationRequest, org: Organisation, *, actor: str, now: datetime,
           ip: str | None) -> None:
    # A request waits only once its organisation was approved; a revocation refuses waiting
    # requests, so that check is a guard.
    if failures := standing_failures(org, not_approved=None, under_review=UNDER_REVIEW):
        raise WrongState("decision", failures)
    campaign_id, _ = program(conn)
    keys, missing = find_keys(conn, campaign_id, {item.sku: item.quantity for item in request.items})
    if missing:  # the request keeps waiting, its reservation with it
        raise WrongState("decision", [Failure(STOCK, "no_keys_left", f"no licence keys are left for {missing}; upload "
                                              "keys first, then grant the request", {"sku": missing})])
    mark_decided(conn, request.id, actor=actor, now=now)
    hand_over_keys(conn, request.id, keys, now=now, actor=actor, ip=ip, data={})


# ---- an organisation's standing ---------------------------------------------------------------

def change_standing(conn: sqlite3.Connection, org_id: int, *, decision: str, reviewer: str, reason: str, now: datetime,
                    ip: str | None) -> Organisation:
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
        start_review(conn, org_id, note=note, now=now)
        append_event(conn, tag="nonprofit:organisation:under_review", actor=actor, subject=f"organisation:{org_id}", ip=ip,
                     at=now, data={"changes": changes, "reason": note})
    elif target == "approved":
        end_review(conn, org_id)
        append_event(conn, tag="nonprofit:organisation:cleared", actor=actor, subject=f"organisation:{org_id}", ip=ip,
                     at=now, data={"changes": changes, "reason": reason.strip() or None})
        _release_after_review(conn, org_id, actor=actor, now=now, ip=ip)
    else:
        _revoke(conn, org, require_reason(reason, "the approval is revoked (its representatives are told)"), actor=actor,
                reviewer=reviewer, now=now, ip=ip)
    return get_organisation(conn, org_id)


def _release_after_review(conn: sqlite3.Connection, org_id: int, *, actor: str, now: datetime, ip: str | None) -> None:
    """The review is over: requests it held go on, oldest first, as a new request would:
    granted at once (their quantities were reserved, so together they fit every limit), or
    waiting for staff when the program says so. One whose keys have run out stays held."""
    campaign_id, prog = program(conn)
    for request in held_for_review(conn, org_id):
        if prog.grant == "by_staff":
            wait_for_staff(conn, request.id)
            append_event(conn, tag="nonprofit:donation:requested", actor=actor, subject=f"organisation:{org_id}", ip=ip,
                         at=now, data={"request": request.id, "changes": {"status": ["held", "requested"]},
                                       "cause": "review ended"})
            continue
        keys, missing = find_keys(conn, campaign_id, {item.sku: item.quantity for item in request.items})
        if missing:
            hold_or_refuse(conn, request, "held", "stock", None, actor=actor, now=now, ip=ip)
        else:
            hand_over_keys(conn, request.id, keys, now=now, actor=actor, ip=ip,
                           data={"cause": "review ended"})


def _revoke(conn: sqlite3.Connection, org: Organisation, why: str, *, actor: str, reviewer: str, now: datetime,
            ip: str | None) -> None:
    """R-N7 found later: the approval ends for good. Waiting requests are refused with the same
    reason; granted donations and their keys stay (R-V7); the holder and everyone who was
    given a validation code are emailed why."""
    revoke_approval(conn, org.id, why=why, reviewer=reviewer, now=now)
    waiting = waiting_requests(conn, org.id)
    for request in waiting:
        hold_or_refuse(conn, request, "refused", None, why, actor=actor, now=now, ip=ip)
    told = representatives(conn, org)
    lang = organisation_language(org.country)
    for address in told:
        enqueue(conn, template=REVOKED_EMAIL, recipient=address, subject_ref=f"organisation-revoked:{org.id}", at=now,
                locale=lang, payload={"organisation": org.name, "reason": why})
    append_event(conn, tag="nonprofit:organisation:revoked", actor=actor, subject=f"organisation:{org.id}", ip=ip, at=now,
                 data={"changes": {"standing": [org.standing, "revoked"]}, "reason": why,
                       "refused_requests": [request.id for request in waiting], "told": len(told)})
