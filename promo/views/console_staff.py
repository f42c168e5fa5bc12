"""Console pages for people rather than campaigns: staff accounts (admins only) and each
staff member's own API tokens (anyone who may use the console)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.api_tokens import create_token, revoke_token, tokens_of
from promo.errors import InputError
from promo.passwords import Busy, hash_off_loop
from promo.staff import ROLES, StaffSession, add_staff, check_new_password, list_staff, update_staff
from promo.timeutil import utcnow
from promo.views.console import READERS, actor, staff_form
from promo.views.context import client_ip, redirect
from promo.views.staffauth import require_role, staff_render


@require_role("admin")
async def staff_page(request: Request, session: StaffSession, *, status: int = 200, errors: dict[str, str] | None = None,
                     values: dict[str, str] | None = None) -> Response:
    members = await request.app.state.db.read(list_staff)
    return staff_render(request, "console/staff.html", status, session=session, members=members, roles=ROLES,
                        errors=errors or {}, values=values or {})


@staff_form("admin")
async def staff_add(request: Request, session: StaffSession, form: FormData) -> Response:
    values = {k: str(form.get(k) or "") for k in ("email", "role")}
    try:
        # Hashed before the transaction, in the bounded pool: argon2 never holds the write lock.
        password = check_new_password(str(form.get("password") or ""))
        try:
            digest = await hash_off_loop(password)
        except Busy:
            raise InputError.one("password", "the server is busy checking passwords: send the form again in a few seconds") from None
        await request.app.state.db.write_grouped(add_staff, email=values["email"], role=values["role"],
                                                 password_hash=digest, now=utcnow(), actor=actor(session))
    except InputError as exc:
        return await staff_page.__wrapped__(request, session, status=422, values=values,  # type: ignore[attr-defined]
                                            errors={e.field: e.message for e in exc.errors})
    return redirect("/console/staff")


@staff_form("admin")
async def staff_update(request: Request, session: StaffSession, form: FormData) -> Response:
    action = str(form.get("action") or "")
    role = str(form.get("role") or "") if action == "role" else None
    disabled = {"disable": True, "enable": False}.get(action)
    try:
        if role is None and disabled is None:
            raise InputError.one("action", "must be role, disable or enable")
        await request.app.state.db.write(update_staff, request.path_params["staff_id"], role=role, disabled=disabled, actor=session.staff,
                                         now=utcnow(), ip=client_ip(request))
    except InputError as exc:
        return await staff_page.__wrapped__(request, session, status=422,  # type: ignore[attr-defined]
                                            errors={e.field: e.message for e in exc.errors})
    return redirect("/console/staff")


@require_role(*READERS)
async def tokens_page(request: Request, session: StaffSession, *, status: int = 200, new_token: str | None = None,
                      error: str | None = None) -> Response:
    tokens = await request.app.state.db.read(tokens_of, session.staff)
    return staff_render(request, "console/tokens.html", status, session=session, tokens=tokens, new_token=new_token,
                        error=error)


@staff_form(*READERS)
async def token_create(request: Request, session: StaffSession, form: FormData) -> Response:
    try:
        raw, _id = await request.app.state.db.write(create_token, session.staff, str(form.get("name") or ""),
                                                    now=utcnow(), ip=client_ip(request))
    except InputError as exc:
        return await tokens_page.__wrapped__(request, session, status=422, error=str(exc))  # type: ignore[attr-defined]
    # Shown once, on this response only; the database keeps a hash.
    return await tokens_page.__wrapped__(request, session, status=201, new_token=raw)  # type: ignore[attr-defined]


@staff_form(*READERS)
async def token_revoke(request: Request, session: StaffSession, form: FormData) -> Response:
    await request.app.state.db.write(revoke_token, session.staff, request.path_params["token_id"], now=utcnow(),
                                     ip=client_ip(request))
    return redirect("/console/tokens")


routes = [
    Route("/console/staff", staff_page, methods=["GET"], name="console.staff"),
    Route("/console/staff", staff_add, methods=["POST"], name="console.staff_add"),
    Route("/console/staff/{staff_id:int64}", staff_update, methods=["POST"], name="console.staff_update"),
    Route("/console/tokens", tokens_page, methods=["GET"], name="console.tokens"),
    Route("/console/tokens", token_create, methods=["POST"], name="console.token_create"),
    Route("/console/tokens/{token_id:int64}/revoke", token_revoke, methods=["POST"], name="console.token_revoke"),
]
