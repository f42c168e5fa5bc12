"""The marketer console under /console/: campaigns (create, edit, clone, publish, pause,
resume, export, import), the "would this qualify?" preview and replay, code pools (upload
with progress, void, stock), and activation uploads.

Marketers and admins change things; auditors see every page marketers see and change
nothing. Every change goes through the same functions as the CLI and the API, which
write the audit events."""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import available_timezones

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.campaign_form import definition_from_form, errors_by_field, form_from_definition, terms_slots, with_terms_of
from promo.campaign_list import CampaignQuery
from promo.campaign_service import (
    campaign_overview,
    create_draft,
    page_with_stock,
    save_and_rearm,
    void_campaign_batch,
)
from promo.campaign_store import STATE_ACTIONS, StoredCampaign, StoredOf, change_state, get_campaign, get_campaign_of, save_campaign
from promo.campaigns import campaign_from_dict, parse_campaign_file, render_campaign_file
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.catalog import load_catalog
from promo.countries import country_codes, country_name
from promo.errors import InputError
from promo.evaluation import DryRun, evaluate_dry_run
from promo.form_sentences import file_sentence
from promo.i18n import N_, languages
from promo.jobs import get_job, recent_jobs, spool
from promo.paging import Keyset, Page
from promo.replay import replay
from promo.staff import POLICY, StaffSession
from promo.timeutil import utcnow
from promo.views.confirm import confirmed
from promo.views.console_consequences import state_consequence, void_consequence
from promo.views.context import client_ip, redirect
from promo.views.dashboard_charts import per_day_chart
from promo.views.guards import MAX_UPLOAD_BYTES, actor, staff_form
from promo.views.staffauth import require_role, staff_gettext, staff_render


async def _offer(request: Request, slug: str) -> StoredOf[PurchaseOffer]:
    """The offer at `slug`; another kind's campaign is not found here (the donation program
    has /console/nonprofit/)."""
    stored: StoredOf[PurchaseOffer] = await request.app.state.db.read(get_campaign_of, slug, PurchaseOffer, what="campaign")
    return stored


async def _catalog(request: Request) -> dict[str, Any]:
    catalog: dict[str, Any] = await request.app.state.db.read(load_catalog)
    return catalog


def _slug(request: Request) -> str:
    return str(request.path_params["slug"])


# ---- campaigns --------------------------------------------------------------------------

@require_role(*POLICY.read_campaigns)
async def index(request: Request, session: StaffSession) -> Response:
    db, now = request.app.state.db, utcnow()
    try:
        query = CampaignQuery.from_query(dict(request.query_params))
        keyset = Keyset.from_query(request.query_params, descending=False)
    except InputError as exc:
        return staff_render(request, "console/index.html", 400, session=session, rows=[], now=now, query=CampaignQuery(),
                            page=Page([]), found=0, errors={e.field: e.message for e in exc.errors},
                            can_edit=session.staff.role in POLICY.edit_campaigns)

    rows, page, found = await db.read(page_with_stock, query, keyset, kind=PurchaseOffer, now=now)
    return staff_render(request, "console/index.html", session=session, rows=rows, now=now, query=query, page=page,
                        found=found, errors={}, can_edit=session.staff.role in POLICY.edit_campaigns)


async def _form_page(request: Request, session: StaffSession, *, values: dict[str, Any], mode: str, status: int = 200,
               errors: dict[str, list[str]] | None = None, stored: StoredCampaign | None = None,
               replayed: Any = None) -> Response:
    catalog = await _catalog(request)
    countries = sorted(((c, country_name(c)) for c in country_codes()), key=lambda pair: pair[1])
    return staff_render(request, "console/edit.html", status, session=session, values=values, mode=mode,
                        errors=errors or {}, stored=stored, replayed=replayed, catalog=catalog, countries=countries,
                        languages=languages(), timezones=sorted(available_timezones()), terms_slots=terms_slots(values))


@require_role(*POLICY.edit_campaigns)
async def new_form(request: Request, session: StaffSession) -> Response:
    clone_of = request.query_params.get("from")
    if clone_of:
        stored = await _offer(request, clone_of)
        values = form_from_definition(stored.campaign.to_dict(), languages())
        values["slug"] = f"{stored.campaign.slug}-copy"
        values["name"] = f"{stored.campaign.name} (copy)"
        values["clone_of"] = stored.campaign.slug
    else:
        values = form_from_definition({}, languages())
    return await _form_page(request, session, values=values, mode="new")


@staff_form(*POLICY.edit_campaigns)
async def create(request: Request, session: StaffSession, form: FormData) -> Response:
    clone_of = str(form.get("clone_of") or "")
    base = (await _offer(request, clone_of)).campaign.to_dict() if clone_of else None
    values = {**form_from_definition({}, languages()), **_posted_values(form)}
    data = None
    try:
        data = definition_from_form(form, base, languages())
        campaign = campaign_from_dict(data, await _catalog(request))
        await request.app.state.db.write(create_draft, campaign, actor=actor(session), now=utcnow(), ip=client_ip(request))
    except InputError as exc:
        return await _form_page(request, session, values=with_terms_of(values, data, languages()), mode="new", status=422,
                                errors=errors_by_field(exc.errors, staff_gettext(request)))
    return redirect(f"/console/campaigns/{campaign.slug}")


@require_role(*POLICY.read_campaigns)
async def campaign_page(request: Request, session: StaffSession) -> Response:
    db, now, slug = request.app.state.db, utcnow(), _slug(request)

    keyset = Keyset.from_query(request.query_params, prefix="batches_")

    data = await db.read(campaign_overview, slug, kind=PurchaseOffer, keyset=keyset, now=now)
    preview, preview_errors = None, {}
    query = request.query_params
    if "sku" in query:
        dry = DryRun(campaign=slug, sku=query.get("sku", ""), country=query.get("country", ""),
                     purchased_at=query.get("purchased_at", ""), activated_at=query.get("activated_at", ""),
                     activation_country=query.get("activation_country", ""))
        try:
            preview = await db.read(evaluate_dry_run, dry, now)
        except InputError as exc:
            preview_errors = {e.field: e.message for e in exc.errors}
    chart = per_day_chart(data["stock"].per_day, data["stored"].campaign.timezone, staff_gettext(request))
    return staff_render(request, "console/campaign.html", session=session, now=now, state=data["stored"].status(now),
                        per_day_chart=chart,
                        can_edit=session.staff.role in POLICY.edit_campaigns, preview=preview, preview_errors=preview_errors,
                        query=dict(query), catalog=await _catalog(request), **data)


@require_role(*POLICY.edit_campaigns)
async def edit_form(request: Request, session: StaffSession) -> Response:
    stored = await _offer(request, _slug(request))
    values = form_from_definition(stored.campaign.to_dict(), languages())
    values["updated_at"] = stored.updated_at
    return await _form_page(request, session, values=values, mode="edit", stored=stored)


@staff_form(*POLICY.edit_campaigns)
async def edit_submit(request: Request, session: StaffSession, form: FormData) -> Response:
    db = request.app.state.db
    stored = await _offer(request, _slug(request))
    values = {**_posted_values(form), "slug": stored.campaign.slug}
    data = None
    try:
        data = definition_from_form(form, stored.campaign.to_dict(), languages())
        data["slug"] = stored.campaign.slug  # the slug is the campaign's address: it does not change
        campaign = campaign_from_dict(data, await _catalog(request))
    except InputError as exc:
        return await _form_page(request, session, values=with_terms_of(values, data, languages()), mode="edit", status=422,
                                stored=stored, errors=errors_by_field(exc.errors, staff_gettext(request)))
    if form.get("action") == "replay":
        report = await db.read(replay, stored.id, campaign)
        return await _form_page(request, session, values=values, mode="edit", stored=stored, replayed=report)

    try:
        await db.write(save_and_rearm, campaign, actor=actor(session), now=utcnow(), ip=client_ip(request),
                       expected_updated_at=str(form.get("updated_at") or "") or None)
    except InputError as exc:
        return await _form_page(request, session, values=values, mode="edit", status=409, stored=stored,
                          errors=errors_by_field(exc.errors, staff_gettext(request)))
    return redirect(f"/console/campaigns/{campaign.slug}")


def _posted_values(form: FormData) -> dict[str, Any]:
    """What was typed, to show the form again as it was sent."""
    values: dict[str, Any] = {}
    for key in form.keys():
        if key in ("countries", "products.qualifying_skus", "products.excluded_skus"):
            values[key] = [str(v) for v in form.getlist(key)]
        elif key != "csrf":
            values[key] = str(form.get(key) or "")
    for key in ("countries", "products.qualifying_skus", "products.excluded_skus"):
        values.setdefault(key, [])
    return values


@staff_form(*POLICY.edit_campaigns)
@confirmed(state_consequence)
async def state_submit(request: Request, session: StaffSession, form: FormData) -> Response:
    action = str(form.get("action") or "")
    if action not in STATE_ACTIONS:
        raise InputError.one("action", f"must be one of {', '.join(STATE_ACTIONS)}")
    await request.app.state.db.write(change_state, _slug(request), action, actor=actor(session), now=utcnow(),
                                     ip=client_ip(request))
    return redirect(f"/console/campaigns/{_slug(request)}")


@require_role(*POLICY.read_campaigns)
async def export_file(request: Request, session: StaffSession) -> Response:
    stored = await _offer(request, _slug(request))
    return Response(render_campaign_file(stored.campaign), media_type="application/toml; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{stored.campaign.slug}.toml"'})


@staff_form(*POLICY.edit_campaigns)
async def import_file(request: Request, session: StaffSession, form: FormData) -> Response:
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InputError.one("file", "choose a campaign file (.toml) to import")  # shown as a sentence below
        raw = await upload.read(MAX_UPLOAD_BYTES)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError.one("file", "is not UTF-8 text") from None
        campaign = parse_campaign_file(text, await _catalog(request))
        # A new campaign arrives as a draft; an existing one keeps its state (the CLI publishes).
        await request.app.state.db.write(save_campaign, campaign, actor=actor(session), now=utcnow(),
                                         ip=client_ip(request), publish=False)
    except InputError as exc:
        title = staff_gettext(request)(N_("The campaign file was not imported"))
        return staff_render(request, "console/message.html", 422, session=session, title=title,
                            errors=[file_sentence(e, staff_gettext(request)) for e in exc.errors])
    return redirect(f"/console/campaigns/{campaign.slug}")


# ---- code pools and activation records -----------------------------------------------------

async def start_upload(request: Request, session: StaffSession, form: FormData, kind: str, slug: str | None) -> Response:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return staff_render(request, "console/message.html", 422, session=session, title=staff_gettext(request)(N_("Nothing was uploaded")),
                            errors=[staff_gettext(request)(N_("Choose a CSV file to upload."))])
    await upload.seek(0)
    path, size = await asyncio.to_thread(spool, upload.file)
    job_id = await request.app.state.jobs.start(kind=kind, path=path, size=size, source=upload.filename,
                                                actor=actor(session), campaign_slug=slug)
    return redirect(f"/console/jobs/{job_id}")


@staff_form(*POLICY.edit_campaigns)
async def upload_codes(request: Request, session: StaffSession, form: FormData) -> Response:
    await _offer(request, _slug(request))  # 404 before anything is stored
    return await start_upload(request, session, form, "codes", _slug(request))


@staff_form(*POLICY.edit_campaigns)
@confirmed(void_consequence)
async def void_codes(request: Request, session: StaffSession, form: FormData) -> Response:
    slug, batch_id = _slug(request), request.path_params["batch_id"]
    await request.app.state.db.write(void_campaign_batch, slug, batch_id, kind=PurchaseOffer, actor=actor(session), now=utcnow(),
                                     ip=client_ip(request))
    return redirect(f"/console/campaigns/{slug}")


@require_role(*POLICY.read_campaigns)
async def activations_page(request: Request, session: StaffSession) -> Response:
    jobs = await request.app.state.db.read(recent_jobs, kind="activations", limit=10)
    return staff_render(request, "console/activations.html", session=session, jobs=jobs,
                        can_edit=session.staff.role in POLICY.edit_campaigns)


@staff_form(*POLICY.edit_campaigns)
async def upload_activations(request: Request, session: StaffSession, form: FormData) -> Response:
    return await start_upload(request, session, form, "activations", None)


@require_role(*POLICY.read_campaigns)
async def job_page(request: Request, session: StaffSession) -> Response:
    job = await request.app.state.db.read(get_job, request.path_params["job_id"])
    jobs = request.app.state.jobs
    back = "/console/activations"
    if job.campaign_slug:
        stored = await request.app.state.db.read(get_campaign, job.campaign_slug)
        back = stored.campaign.console_path
    return staff_render(request, "console/job.html", session=session, job=job, progress=jobs.progress(job),
                        running_here=jobs.running_here(job.id), back=back)


routes = [
    Route("/console/", index, name="console.index"),
    Route("/console/campaigns/new", new_form, methods=["GET"], name="console.new_form"),
    Route("/console/campaigns/new", create, methods=["POST"], name="console.create"),
    Route("/console/campaigns/import", import_file, methods=["POST"], name="console.import"),
    Route("/console/campaigns/{slug}", campaign_page, name="console.campaign"),
    Route("/console/campaigns/{slug}/edit", edit_form, methods=["GET"], name="console.edit_form"),
    Route("/console/campaigns/{slug}/edit", edit_submit, methods=["POST"], name="console.edit"),
    Route("/console/campaigns/{slug}/state", state_submit, methods=["POST"], name="console.state"),
    Route("/console/campaigns/{slug}/export.toml", export_file, name="console.export"),
    Route("/console/campaigns/{slug}/codes", upload_codes, methods=["POST"], name="console.upload_codes"),
    Route("/console/campaigns/{slug}/batches/{batch_id:int64}/void", void_codes, methods=["POST"], name="console.void"),
    Route("/console/activations", activations_page, methods=["GET"], name="console.activations"),
    Route("/console/activations", upload_activations, methods=["POST"], name="console.upload_activations"),
    Route("/console/jobs/{job_id:int64}", job_page, name="console.job"),
]

