"""Auditor pages under /audit/ (roles auditor and admin), read-only: the decision log with
filters, one attempt in detail, streamed CSV/JSON exports, and the audit chain's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.audit import verify_chain
from promo.campaign_store import list_campaigns
from promo.decision_log import AttemptFilter, AttemptRow, attempt_detail, count_attempts, query_attempts
from promo.errors import InputError, NotFound
from promo.paging import Keyset, Page
from promo.reconciliation import reconcile
from promo.redemption_lookup import LOOKUPS, Lookup, find_redemptions
from promo.staff import POLICY, StaffSession
from promo.staff_actions import ActionFilter, StaffAction, query_actions, staff_actors
from promo.timeutil import utcnow
from promo.views.exports import csv_download, json_download
from promo.views.staffauth import require_role, staff_render

PAGE = 100
EXPORT_CHUNK = 1000
CSV_COLUMNS = ("id", "attempted_at", "campaign", "account", "product_key", "sku", "country", "outcome", "rules",
               "code", "email_status", "email_error", "client_ip")
ACTION_COLUMNS = ("seq", "created_at", "tag", "actor", "subject", "ip", "data")


async def _filter(request: Request) -> AttemptFilter:
    return AttemptFilter.from_query(dict(request.query_params))


@require_role(*POLICY.read_audit)
async def log_page(request: Request, session: StaffSession) -> Response:
    db = request.app.state.db
    try:
        flt = await _filter(request)
        keyset = Keyset.from_query(request.query_params, size=PAGE)
    except InputError as exc:
        return staff_render(request, "audit/log.html", 400, session=session, errors={e.field: e.message for e in exc.errors},
                            rows=[], total=0, flt=AttemptFilter(), query={}, chain=None, campaigns=[], page=Page([]))
    fetched = await db.read(query_attempts, flt, before_id=keyset.before, after_id=keyset.after, limit=PAGE + 1)
    page = keyset.page(fetched, lambda row: row.id)
    campaigns = {s.campaign.slug: s.campaign for s in await db.read(list_campaigns)}
    return staff_render(request, "audit/log.html", session=session, errors={}, rows=page.items, flt=flt, query=flt.as_query(),
                        total=await db.read(count_attempts, flt), chain=await db.read(verify_chain),
                        campaigns=campaigns, page=page)


@require_role(*POLICY.read_audit)
async def attempt_page(request: Request, session: StaffSession) -> Response:
    attempt_id = request.path_params["attempt_id"]
    detail = await request.app.state.db.read(attempt_detail, attempt_id)
    if detail is None:
        raise NotFound("attempt", str(attempt_id))
    campaigns = {s.campaign.slug: s.campaign for s in await request.app.state.db.read(list_campaigns)}
    return staff_render(request, "audit/attempt.html", session=session, campaigns=campaigns, **detail)


async def _rows(request: Request, flt: AttemptFilter) -> AsyncIterator[list[AttemptRow]]:
    before = None
    while True:
        chunk = await request.app.state.db.read(query_attempts, flt, before_id=before, limit=EXPORT_CHUNK)
        if not chunk:
            return
        yield chunk
        before = chunk[-1].id


@require_role(*POLICY.read_audit)
async def export_csv(request: Request, session: StaffSession) -> Response:
    flt = await _filter(request)

    def cells(row: AttemptRow) -> list[Any]:
        data = row.as_dict()
        return [data[column] if column != "rules" else row.rules for column in CSV_COLUMNS]

    return csv_download(_rows(request, flt), CSV_COLUMNS, cells, "decisions.csv")


@require_role(*POLICY.read_audit)
async def export_json(request: Request, session: StaffSession) -> Response:
    return json_download(_rows(request, await _filter(request)), AttemptRow.as_dict, "decisions.json")


@require_role(*POLICY.read_audit)
async def reconciliation_page(request: Request, session: StaffSession) -> Response:
    db = request.app.state.db
    slugs = [s.campaign.slug for s in await db.read(list_campaigns)]
    chosen = request.query_params.get("campaign") or (slugs[0] if slugs else None)
    if chosen and chosen not in slugs:
        raise NotFound("campaign", chosen)
    report = await db.read(reconcile, chosen, utcnow()) if chosen else None
    return staff_render(request, "audit/reconciliation.html", session=session, slugs=slugs, chosen=chosen, report=report)


def _action_filter(request: Request) -> ActionFilter:
    return ActionFilter.from_query(dict(request.query_params))


@require_role(*POLICY.read_audit)
async def staff_actions_page(request: Request, session: StaffSession) -> Response:
    db = request.app.state.db
    actors = await db.read(staff_actors)
    try:
        flt = _action_filter(request)
        keyset = Keyset.from_query(request.query_params)
    except InputError as exc:
        return staff_render(request, "audit/actions.html", 400, session=session, flt=ActionFilter(), page=Page([]),
                            errors={e.field: e.message for e in exc.errors}, query=dict(request.query_params),
                            actors=actors)
    page = await db.read(query_actions, flt, keyset)
    return staff_render(request, "audit/actions.html", session=session, flt=flt, page=page, errors={},
                        query=flt.as_query(), actors=actors)


async def _actions(request: Request, flt: ActionFilter) -> AsyncIterator[list[StaffAction]]:
    keyset = Keyset(size=EXPORT_CHUNK)
    while True:
        page = await request.app.state.db.read(query_actions, flt, keyset)
        if not page.items:
            return
        yield page.items
        if page.next_query is None:
            return
        keyset = Keyset(before=page.items[-1].seq, size=EXPORT_CHUNK)


@require_role(*POLICY.read_audit)
async def actions_csv(request: Request, session: StaffSession) -> Response:
    def cells(action: StaffAction) -> list[Any]:
        data = action.as_dict()
        return [data[c] if c != "data" else action.raw for c in ACTION_COLUMNS]

    return csv_download(_actions(request, _action_filter(request)), ACTION_COLUMNS, cells, "staff-actions.csv")


@require_role(*POLICY.read_audit)
async def actions_json(request: Request, session: StaffSession) -> Response:
    return json_download(_actions(request, _action_filter(request)), StaffAction.as_dict, "staff-actions.json")


@require_role(*POLICY.look_up_redemptions)
async def redemptions_page(request: Request, session: StaffSession) -> Response:
    query = dict(request.query_params)
    values = {"by": query.get("by") or "account", "q": query.get("q") or ""}
    try:
        lookup = Lookup.from_query(query)
        keyset = Keyset.from_query(request.query_params)
    except InputError as exc:
        return staff_render(request, "audit/redemptions.html", 400, session=session, lookups=LOOKUPS, values=values,
                            lookup=None, page=Page([]), errors={e.field: e.message for e in exc.errors})
    page = await request.app.state.db.read(find_redemptions, lookup, keyset) if lookup else Page([])
    return staff_render(request, "audit/redemptions.html", session=session, lookups=LOOKUPS, values=values,
                        lookup=lookup, page=page, errors={})


routes = [
    Route("/audit/", log_page, name="auditor.log"),
    Route("/audit/attempts/{attempt_id:int64}", attempt_page, name="auditor.attempt"),
    Route("/audit/export.csv", export_csv, name="auditor.export_csv"),
    Route("/audit/export.json", export_json, name="auditor.export_json"),
    Route("/audit/reconciliation", reconciliation_page, name="auditor.reconciliation"),
    Route("/audit/actions", staff_actions_page, name="auditor.actions"),
    Route("/audit/actions.csv", actions_csv, name="auditor.actions_csv"),
    Route("/audit/actions.json", actions_json, name="auditor.actions_json"),
    Route("/audit/redemptions", redemptions_page, name="auditor.redemptions"),
]
