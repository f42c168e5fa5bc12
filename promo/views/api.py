"""The JSON API for automation under /api/v1/: campaigns, code and activation uploads,
dry-run evaluation, stock. Authenticated by per-staff API tokens (Bearer), scoped by the
owner's role exactly like the console; errors are problem+json naming the field and rule.
The OpenAPI description is promo/views/openapi.py, served at /api/v1/openapi.json."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from promo.api_tokens import needs_touch, staff_for_token, touch_token
from promo.auth import bearer_token
from promo.campaign_service import save_and_rearm, stock_of
from promo.campaign_store import STATE_ACTIONS, change_state, get_campaign, list_campaigns
from promo.campaigns import campaign_from_dict, parse_campaign_file
from promo.catalog import load_catalog
from promo.errors import InputError, refuse_nul
from promo.evaluation import DryRun, evaluate_dry_run
from promo.jobs import get_job
from promo.nonprofit.validation_codes import partner_for_token, verify_code
from promo.staff import POLICY, StaffMember
from promo.timeutil import utcnow
from promo.views.context import client_ip
from promo.views.guards import MAX_UPLOAD_BYTES
from promo.views.openapi import OPENAPI

ApiView = Callable[[Request, StaffMember, str], Awaitable[Response]]


def problem(status: int, title: str, errors: list[dict[str, Any]] | None = None, request_id: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "status": status, "title": title}
    if errors:
        body["errors"] = errors
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def api_role(*roles: str) -> Callable[[ApiView], Callable[[Request], Awaitable[Response]]]:
    """A live token whose owner has one of `roles`: else 401 (no or bad token) or 403."""

    def decorate(view: ApiView) -> Callable[[Request], Awaitable[Response]]:
        @wraps(view)
        async def wrapper(request: Request) -> Response:
            found = await request.app.state.db.read(staff_for_token, raw) if (raw := bearer_token(request.headers)) else None
            if found is None:
                return problem(401, "a valid API token is required (Authorization: Bearer …)",
                               headers={"WWW-Authenticate": 'Bearer realm="promo"'})
            token_id, staff, last_used = found
            if staff.role not in roles:
                return problem(403, f"the {staff.role} role cannot do this; it needs one of: {', '.join(roles)}")
            now = utcnow()
            if needs_touch(last_used, now):
                await request.app.state.db.write(touch_token, token_id, now)
            return await view(request, staff, f"staff:{staff.email} (API token {token_id})")

        return wrapper

    return decorate


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError.one("body", "is not valid JSON") from None
    except RecursionError:  # json.loads gives up on arrays or objects nested about a thousand deep
        raise InputError.one("body", "is nested too deeply") from None
    if not isinstance(body, dict):
        raise InputError.one("body", "must be a JSON object")
    refuse_nul(_strings(body))  # as a form's fields: named, on both stores (errors.NUL_MESSAGE)
    return body


def _strings(document: dict[str, Any]) -> Iterator[tuple[str, object]]:
    """(path, value) for every key and value of a JSON document (definition.countries.0, ...);
    a loop, not recursion: json.loads accepts nesting deeper than the stack left here."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                yield f"{path}{key}", key  # the key itself may hold the NUL
                stack.append((f"{path}{key}.", item))
        elif isinstance(value, list):
            stack.extend((f"{path}{index}.", item) for index, item in enumerate(value))
        else:
            yield path.rstrip("."), value


def _campaign_json(stored: Any, now: Any) -> dict[str, Any]:
    return {"slug": stored.campaign.slug, "kind": stored.campaign.kind, "name": stored.campaign.name,
            "status": stored.status(now), "updated_at": stored.updated_at,
            "definition": json.loads(json.dumps(stored.campaign.to_dict(), default=str))}


@api_role(*POLICY.read_campaigns)
async def campaigns_list(request: Request, staff: StaffMember, actor: str) -> Response:
    now = utcnow()
    return JSONResponse({"campaigns": [_campaign_json(s, now) for s in await request.app.state.db.read(list_campaigns)]})


@api_role(*POLICY.read_campaigns)
async def campaign_read(request: Request, staff: StaffMember, actor: str) -> Response:
    return JSONResponse(_campaign_json(await request.app.state.db.read(get_campaign, request.path_params["slug"]), utcnow()))


@api_role(*POLICY.edit_campaigns)
async def campaign_write(request: Request, staff: StaffMember, actor: str) -> Response:
    """Create (as a draft) or replace a campaign: JSON (the definition) or TOML (a campaign file)."""
    slug = request.path_params["slug"]
    catalog = await request.app.state.db.read(load_catalog)
    if request.headers.get("content-type", "").startswith("application/toml"):
        try:
            campaign = parse_campaign_file((await request.body()).decode("utf-8"), catalog)
        except UnicodeDecodeError:
            raise InputError.one("body", "is not UTF-8 text") from None
    else:
        campaign = campaign_from_dict(await _json_body(request), catalog)
    if campaign.slug != slug:
        raise InputError.one("slug", f"is {campaign.slug!r} in the body but {slug!r} in the address")
    now = utcnow()

    existed, changes = await request.app.state.db.write(save_and_rearm, campaign, actor=actor, now=now, ip=client_ip(request),
                                                        publish=False)
    stored = await request.app.state.db.read(get_campaign, slug)
    return JSONResponse({**_campaign_json(stored, now), "changes": changes}, status_code=200 if existed else 201)


@api_role(*POLICY.edit_campaigns)
async def campaign_state(request: Request, staff: StaffMember, actor: str) -> Response:
    action = (await _json_body(request)).get("action")
    if action not in STATE_ACTIONS:
        raise InputError.one("action", f"must be one of {', '.join(STATE_ACTIONS)}")
    stored = await request.app.state.db.write(change_state, request.path_params["slug"], action, actor=actor, now=utcnow(),
                                              ip=client_ip(request))
    return JSONResponse(_campaign_json(stored, utcnow()))


@api_role(*POLICY.read_campaigns)
async def evaluate(request: Request, staff: StaffMember, actor: str) -> Response:
    body = await _json_body(request)
    dry = DryRun(campaign=request.path_params["slug"], **{k: str(body.get(k) or "") for k in
                                                          ("sku", "country", "purchase_country", "activation_country",
                                                           "purchased_at", "activated_at")})
    decision = await request.app.state.db.read(evaluate_dry_run, dry, utcnow())
    return JSONResponse(decision.as_dict())


@api_role(*POLICY.read_campaigns)
async def stock(request: Request, staff: StaffMember, actor: str) -> Response:
    return JSONResponse(await request.app.state.db.read(stock_of, request.path_params["slug"], utcnow()))


async def _upload(request: Request, actor: str, kind: str, slug: str | None) -> Response:
    """Stream the CSV body to a temporary file, import it (all or nothing) and answer with
    the outcome: 201 with the count, or 422 with every error by line."""
    if slug is not None:
        await request.app.state.db.read(get_campaign, slug)  # 404 before reading the body
    fd, path = tempfile.mkstemp(prefix="promo-upload-", suffix=".csv")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    break
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    if size > MAX_UPLOAD_BYTES:  # the job never starts, so its cleanup will not remove the file
        os.unlink(path)
        return problem(413, f"uploads are limited to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    source = request.query_params.get("source") or f"api-{kind}.csv"
    jobs = request.app.state.jobs
    job = await jobs.wait(await jobs.start(kind=kind, path=path, size=size, source=source, actor=actor, campaign_slug=slug))
    if job.status != "done":  # the job stored its errors as FieldError.as_dict()
        return problem(422, f"nothing was imported: {job.error_total} problem(s)", job.errors)
    return JSONResponse(job.as_dict(1.0), status_code=201)


@api_role(*POLICY.edit_campaigns)
async def upload_codes(request: Request, staff: StaffMember, actor: str) -> Response:
    return await _upload(request, actor, "codes", request.path_params["slug"])


@api_role(*POLICY.edit_campaigns)
async def upload_activations(request: Request, staff: StaffMember, actor: str) -> Response:
    return await _upload(request, actor, "activations", None)


@api_role(*POLICY.read_campaigns)
async def job(request: Request, staff: StaffMember, actor: str) -> Response:
    found = await request.app.state.db.read(get_job, request.path_params["job_id"])
    return JSONResponse(found.as_dict(request.app.state.jobs.progress(found)))


async def verify_validation_code(request: Request) -> Response:
    """R-V6: a partner confirms that a validation code is valid, and for which organisation.
    Authenticated with a partner token (`promo partners add`); every use is recorded."""
    partner = await request.app.state.db.read(partner_for_token, raw) if (raw := bearer_token(request.headers)) else None
    if partner is None:
        return problem(401, "a valid partner token is required (Authorization: Bearer partner_…)",
                       headers={"WWW-Authenticate": 'Bearer realm="promo-partners"'})
    code = (await _json_body(request)).get("code")
    if not isinstance(code, str) or not code.strip():
        raise InputError.one("code", "is required, e.g. 123a4567@MyNGOname", rule="R-V1")
    answer = await request.app.state.db.write(verify_code, partner[0], code.strip(), now=utcnow())
    return JSONResponse(answer, status_code=429 if answer.get("reason") == "too_many_failures" else 200)


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


routes = [
    Route("/api/v1/openapi.json", openapi, name="api.openapi"),
    Route("/api/v1/campaigns", campaigns_list, name="api.campaigns"),
    Route("/api/v1/campaigns/{slug}", campaign_read, methods=["GET"], name="api.campaign"),
    Route("/api/v1/campaigns/{slug}", campaign_write, methods=["PUT"], name="api.campaign_write"),
    Route("/api/v1/campaigns/{slug}/state", campaign_state, methods=["POST"], name="api.campaign_state"),
    Route("/api/v1/campaigns/{slug}/evaluate", evaluate, methods=["POST"], name="api.evaluate"),
    Route("/api/v1/campaigns/{slug}/stock", stock, name="api.stock"),
    Route("/api/v1/campaigns/{slug}/codes", upload_codes, methods=["POST"], name="api.codes"),
    Route("/api/v1/activations", upload_activations, methods=["POST"], name="api.activations"),
    Route("/api/v1/jobs/{job_id:int64}", job, name="api.job"),
    Route("/api/v1/validation-codes/verify", verify_validation_code, methods=["POST"], name="api.verify_code"),
]
