"""The review queue for support and admins (R-X11, R-X12): the queue, a claim with its receipt
shown inline and its key's activation record, the decision, and the history of decided claims."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from promo.auth import same_token
from promo.errors import InputError, NotFound
from promo.i18n import N_, in_language
from promo.paging import Keyset, parse_id
from promo.receipt_preview import Preview, preview_of
from promo.review_history import DECIDED, DecidedFilter, decided_claims, filter_choices
from promo.reviews import REVIEWER_ROLES, Claim, NotAllowed, claim_evidence, decide, get_claim, next_pending, pending_claims
from promo.staff import StaffSession
from promo.timeutil import utcnow
from promo.views.context import client_ip, limits_of, read_form, redirect
from promo.views.staffauth import expired_form, require_role, staff_gettext, staff_render


def _claim_id(request: Request) -> int:
    return int(request.path_params["claim_id"])  # {claim_id:int64}


def _just_decided(request: Request) -> int | None:
    """The claim decided just before this page (?decided=N, set by the redirect), to say so."""
    try:
        return parse_id(request.query_params.get("decided"), "decided")
    except InputError:
        return None


@require_role(*REVIEWER_ROLES)
async def queue(request: Request, session: StaffSession) -> Response:
    keyset = Keyset.from_query(request.query_params, descending=False)
    page = await request.app.state.db.read(pending_claims, keyset, shared=limits_of(request).shared_addresses)
    return staff_render(request, "review/queue.html", session=session, claims=page.items, page=page,
                        decided=_just_decided(request))


@require_role(*REVIEWER_ROLES)
async def history(request: Request, session: StaffSession) -> Response:
    db = request.app.state.db
    values = {"session": session, "choices": await db.read(filter_choices), "decisions": DECIDED,
              "query": request.query_params}
    try:
        flt, keyset = DecidedFilter.from_query(request.query_params), Keyset.from_query(request.query_params)
    except InputError as exc:
        _ = staff_gettext(request)
        return staff_render(request, "review/history.html", 422, flt=DecidedFilter(), claims=[], page=None,
                            errors={e.field: in_language(e.message, _) for e in exc.errors}, **values)
    page = await db.read(decided_claims, flt, keyset)
    return staff_render(request, "review/history.html", flt=flt, claims=page.items, page=page, errors={}, **values)


async def _preview(request: Request, claim: Claim) -> Preview | None:
    if claim.receipt_file is None or claim.receipt_type is None:  # held by the redemption (R-X12): no receipt
        return None
    return await preview_of(limits_of(request).receipts_dir, claim.receipt_file, claim.receipt_type)


async def _claim_page(request: Request, session: StaffSession, claim_id: int, error: str | None = None,
                      status: int = 200) -> Response:
    evidence = await request.app.state.db.read(claim_evidence, claim_id, shared=limits_of(request).shared_addresses)
    return staff_render(request, "review/claim.html", status, session=session, claim=evidence.claim, evidence=evidence,
                        preview=await _preview(request, evidence.claim), error=error, decided=_just_decided(request))


@require_role(*REVIEWER_ROLES)
async def claim_page(request: Request, session: StaffSession) -> Response:
    return await _claim_page(request, session, _claim_id(request))


@require_role(*REVIEWER_ROLES)
async def receipt(request: Request, session: StaffSession) -> Response:
    claim = await request.app.state.db.read(get_claim, _claim_id(request))
    if claim.receipt_file is None:  # held by the redemption (R-X12): there is no receipt
        raise NotFound("receipt", str(claim.id))
    path = limits_of(request).receipts_dir / claim.receipt_file
    if not path.is_file():
        raise NotFound("receipt", str(claim.id))
    # Served only here, to reviewers, as a download of the type found by content.
    return FileResponse(path, media_type=claim.receipt_type, filename=f"receipt-{claim.id}",
                        content_disposition_type="attachment")


@require_role(*REVIEWER_ROLES)
async def receipt_preview(request: Request, session: StaffSession) -> Response:
    """The receipt as an image for the claim's page: the image itself, or a PDF's first page
    as a PNG. Its type is the one found by content (nosniff, set on every answer, keeps the
    browser to it); a receipt without a preview is a 404, its download still offered."""
    claim = await request.app.state.db.read(get_claim, _claim_id(request))
    preview = await _preview(request, claim)
    if preview is None or preview.path is None or preview.media_type is None:
        raise NotFound("receipt preview", str(claim.id))
    return FileResponse(preview.path, media_type=preview.media_type, filename=f"receipt-{claim.id}-preview",
                        content_disposition_type="inline")


@require_role(*REVIEWER_ROLES)
async def decide_claim(request: Request, session: StaffSession) -> Response:
    form = await read_form(request)
    if not same_token(session.csrf_token, str(form.get("csrf") or "")):
        return expired_form(request, session)
    claim_id, decision = _claim_id(request), request.path_params["decision"]
    if decision not in ("approve", "reject"):
        raise NotFound("page", request.url.path)
    try:
        result = await request.app.state.db.run_writer(
            decide, claim_id, decision, reviewer=session.staff.email, reason=str(form.get("reason") or ""), now=utcnow(),
            ip=client_ip(request))
    except NotAllowed as exc:
        return await _claim_page(request, session, claim_id, staff_gettext(request)(str(exc)), 403)
    except InputError as exc:
        _ = staff_gettext(request)
        return await _claim_page(request, session, claim_id, " ".join(in_language(e.message, _) for e in exc.errors), 422)
    _ = staff_gettext(request)
    if result is not None and not result.redeemed:
        # The rules' own words, as the decision log keeps them: a reference for the reviewer.
        rules = "; ".join(f"{f.rule}: {f.message}" for f in result.decision.failures)
        return await _claim_page(request, session, claim_id,
                                 _(N_("Not approved: the rules still refuse it (%(rules)s). The claim stays waiting.")) % {"rules": rules},
                                 409)
    request.app.state.wake_relay()
    # A reviewer works through the queue: straight on to the next waiting claim.
    following = await request.app.state.db.read(next_pending, claim_id)
    return redirect(f"/review/{following}?decided={claim_id}" if following else f"/review/?decided={claim_id}")


routes = [
    Route("/review/", queue, name="review.queue"),
    Route("/review/decided", history, name="review.history"),
    Route("/review/{claim_id:int64}", claim_page, name="review.claim"),
    Route("/review/{claim_id:int64}/receipt", receipt, name="review.receipt"),
    Route("/review/{claim_id:int64}/receipt/preview", receipt_preview, name="review.receipt_preview"),
    Route("/review/{claim_id:int64}/{decision:str}", decide_claim, methods=["POST"], name="review.decide"),
]
