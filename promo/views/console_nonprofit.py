"""Staff pages of the nonprofit program: review organisations against R-N5/R-N6/R-N7, review
an approved one again, clear it or revoke its approval (R-N7); grant, hold or refuse waiting
donation requests (R-N4); process returns (R-N9). Same roles as the marketer console:
marketers and admins decide, auditors read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.errors import InputError, NotFound
from promo.nonprofit.decisions import REQUEST_DECISIONS, STANDING_DECISIONS, change_standing, decide_request
from promo.nonprofit.organisations import review_organisation
from promo.nonprofit.pages import program_overview
from promo.nonprofit.program import PROGRAM
from promo.nonprofit.returns import decide_return
from promo.staff import POLICY, StaffSession
from promo.timeutil import utcnow
from promo.views.console import start_upload
from promo.views.context import client_ip, redirect
from promo.views.guards import staff_form
from promo.views.nonprofit import LABELS
from promo.views.staffauth import require_role, staff_render


async def _page(request: Request, session: StaffSession, status: int = 200, error: str | None = None) -> Response:
    overview = await request.app.state.db.read(program_overview)
    return staff_render(request, "console/nonprofit.html", status, session=session, labels=LABELS, error=error,
                        can_edit=session.staff.role in POLICY.edit_campaigns, **vars(overview))


@require_role(*POLICY.read_campaigns)
async def overview(request: Request, session: StaffSession) -> Response:
    return await _page(request, session)


async def _decide(request: Request, session: StaffSession, form: FormData, decide: Callable[..., Any], name: str,
                  decisions: tuple[str, ...]) -> Response:
    """A staff decision on one organisation, request or return: audited by `decide`, errors shown with their rule."""
    target, decision = request.path_params[name], str(request.path_params["decision"])
    if decision not in decisions:
        raise NotFound("page", request.url.path)
    try:
        await request.app.state.db.write(decide, target, decision=decision, reviewer=session.staff.email,
                                         reason=str(form.get("reason") or ""), now=utcnow(), ip=client_ip(request))
    except InputError as exc:
        return await _page(request, session, exc.status if exc.status != 400 else 422, "; ".join(
            f"{e.message} ({e.rule})" if e.rule else e.message for e in exc.errors))
    request.app.state.wake_relay()  # the requester (of a request, a return) or the representatives are emailed
    return redirect("/console/nonprofit/")


@staff_form(*POLICY.edit_campaigns)
async def review(request: Request, session: StaffSession, form: FormData) -> Response:
    """approve/reject a registration; review/clear/revoke an approved organisation (R-N7)."""
    if request.path_params["decision"] in STANDING_DECISIONS:
        return await _decide(request, session, form, change_standing, "org_id", tuple(STANDING_DECISIONS))
    return await _decide(request, session, form, review_organisation, "org_id", ("approve", "reject"))


@staff_form(*POLICY.edit_campaigns)
async def decide_donation(request: Request, session: StaffSession, form: FormData) -> Response:
    """Grant, hold or refuse a waiting donation request (R-N4)."""
    return await _decide(request, session, form, decide_request, "request_id", tuple(REQUEST_DECISIONS))


@staff_form(*POLICY.edit_campaigns)
async def process_return(request: Request, session: StaffSession, form: FormData) -> Response:
    return await _decide(request, session, form, decide_return, "return_id", ("complete", "reject"))


@staff_form(*POLICY.edit_campaigns)
async def upload_keys(request: Request, session: StaffSession, form: FormData) -> Response:
    """Licence keys for the program's per-product pools: a CSV with `code,sku`, all or nothing."""
    return await start_upload(request, session, form, "codes", PROGRAM)


routes = [
    Route("/console/nonprofit/", overview, name="console.nonprofit"),
    Route("/console/nonprofit/keys", upload_keys, methods=["POST"], name="console.nonprofit_keys"),
    Route("/console/nonprofit/organisations/{org_id:int64}/{decision}", review, methods=["POST"], name="console.nonprofit_review"),
    Route("/console/nonprofit/requests/{request_id:int64}/{decision}", decide_donation, methods=["POST"],
          name="console.nonprofit_request"),
    Route("/console/nonprofit/returns/{return_id:int64}/{decision}", process_return, methods=["POST"], name="console.nonprofit_return"),
]
