"""The review queue for support and admins (R-X11, R-X12): list, claim, receipt, decide."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from promo.activations import Activation, get_activation
from promo.auth import same_token
from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.paging import Keyset
from promo.reviews import KEY_NOT_BOUND, REVIEWER_ROLES, Claim, NotAllowed, approve, get_claim, pending_claims, reject
from promo.staff import StaffSession
from promo.timeutil import utcnow
from promo.views.context import client_ip, read_form, redirect
from promo.views.staffauth import expired_form, require_role, staff_render


def _claim_id(request: Request) -> int:
    return int(request.path_params["claim_id"])  # {claim_id:int64}


@require_role(*REVIEWER_ROLES)
async def queue(request: Request, session: StaffSession) -> Response:
    keyset = Keyset.from_query(request.query_params, descending=False)
    page = await request.app.state.db.read(pending_claims, keyset)
    return staff_render(request, "review/queue.html", session=session, claims=page.items, page=page)


async def _record(request: Request, claim: Claim) -> Activation | None:
    """The key's activation record, when the claim is about an unbound one (R-X5): the reviewer
    compares it with what the customer states and the receipt."""
    return await request.app.state.db.read(get_activation, claim.product_key) if claim.cause == KEY_NOT_BOUND else None


@require_role(*REVIEWER_ROLES)
async def claim_page(request: Request, session: StaffSession, error: str | None = None, status: int = 200) -> Response:
    claim = await request.app.state.db.read(get_claim, _claim_id(request))
    return staff_render(request, "review/claim.html", status, session=session, claim=claim, error=error,
                        record=await _record(request, claim))


@require_role(*REVIEWER_ROLES)
async def receipt(request: Request, session: StaffSession) -> Response:
    claim = await request.app.state.db.read(get_claim, _claim_id(request))
    if claim.receipt_file is None:  # held by the redemption (R-X12): there is no receipt
        raise NotFound("receipt", str(claim.id))
    path = request.app.state.settings.receipts_dir / claim.receipt_file
    if not path.is_file():
        raise NotFound("receipt", str(claim.id))
    # Served only here, to reviewers, as a download of the type found by content.
    return FileResponse(path, media_type=claim.receipt_type, filename=f"receipt-{claim.id}",
                        content_disposition_type="attachment")


@require_role(*REVIEWER_ROLES)
async def decide(request: Request, session: StaffSession) -> Response:
    form = await read_form(request)
    if not same_token(session.csrf_token, str(form.get("csrf") or "")):
        return expired_form(request, session)
    claim_id, decision = _claim_id(request), request.path_params["decision"]
    if decision not in ("approve", "reject"):
        raise NotFound("page", request.url.path)
    settings = request.app.state.settings

    def run(conn):  # type: ignore[no-untyped-def]
        with transaction(conn):
            if decision == "approve":
                return approve(conn, claim_id, reviewer=session.staff.email, now=utcnow(), ip=client_ip(request),
                               mail_domain=settings.mail.message_id_domain)
            return reject(conn, claim_id, reviewer=session.staff.email, reason=str(form.get("reason") or ""),
                          now=utcnow(), ip=client_ip(request), mail_domain=settings.mail.message_id_domain)

    try:
        result = await request.app.state.db.run_writer(run)
    except NotAllowed as exc:
        claim = await request.app.state.db.read(get_claim, claim_id)
        return staff_render(request, "review/claim.html", 403, session=session, claim=claim, error=str(exc))
    except InputError as exc:
        claim = await request.app.state.db.read(get_claim, claim_id)
        return staff_render(request, "review/claim.html", 422, session=session, claim=claim, error=str(exc))
    if decision == "approve" and not result.redeemed:
        claim = await request.app.state.db.read(get_claim, claim_id)
        rules = ", ".join(f"{f.rule}: {f.message}" for f in result.decision.failures)
        return staff_render(request, "review/claim.html", 409, session=session, claim=claim,
                            error=f"Not approved, the rules still refuse: {rules}")
    request.app.state.wake_relay()
    return redirect("/review/")


routes = [
    Route("/review/", queue, name="review.queue"),
    Route("/review/{claim_id:int64}", claim_page, name="review.claim"),
    Route("/review/{claim_id:int64}/receipt", receipt, name="review.receipt"),
    Route("/review/{claim_id:int64}/{decision:str}", decide, methods=["POST"], name="review.decide"),
]
