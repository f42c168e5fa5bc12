"""Console pages for people rather than campaigns: staff accounts (admins only) and each
staff member's own API tokens (anyone who may use the console)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.api_tokens import create_token, revoke_token, token_of, tokens_of
from promo.errors import InputError
from promo.i18n import N_
from promo.passwords import Busy, hash_off_loop
from promo.staff import POLICY, ROLES, StaffSession, account_reach, add_staff, check_new_password, list_staff, update_staff
from promo.timeutil import utcnow
from promo.views.confirm import Consequence, confirmed
from promo.views.context import client_ip, redirect
from promo.views.guards import actor, staff_form
from promo.views.staffauth import require_role, staff_gettext, staff_render


@require_role(*POLICY.manage_staff)
async def staff_page(request: Request, session: StaffSession) -> Response:
    return await _staff_list(request, session)


async def _staff_list(request: Request, session: StaffSession, *, status: int = 200, errors: dict[str, str] | None = None,
                      values: dict[str, str] | None = None) -> Response:
    """The staff list, also shown again with a form's errors (the role is checked by then)."""
    members = await request.app.state.db.read(list_staff)
    return staff_render(request, "console/staff.html", status, session=session, members=members, roles=ROLES,
                        errors=errors or {}, values=values or {})


@staff_form(*POLICY.manage_staff)
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
        return await _staff_list(request, session, status=422, values=values, errors={e.field: e.message for e in exc.errors})
    return redirect("/console/staff")


async def _disable_consequence(request: Request, session: StaffSession, form: FormData) -> Consequence | None:
    """Disabling signs someone out and stops their scripts at once: confirmed. Changing a
    role or enabling an account is not."""
    staff_id = request.path_params["staff_id"]  # an int64 by the route's convertor
    if form.get("action") != "disable":
        return None
    reach = await request.app.state.db.read(account_reach, staff_id)
    if reach is None or reach["disabled"] or reach["id"] == session.staff.id:
        return None  # nothing to confirm: update_staff says why it cannot be done
    email, role, sessions, tokens, _ = reach["email"], reach["role"], reach["sessions"], reach["tokens"], staff_gettext(request)
    ending = _(N_("1 open session ends at once")) if sessions == 1 else \
        _(N_("%(n)s open sessions end at once")) % {"n": f"{sessions:,}"}
    stopping = _(N_("1 API token stops working")) if tokens == 1 else _(N_("%(n)s API tokens stop working")) % {"n": f"{tokens:,}"}
    return Consequence(
        title=_(N_("Disable a staff account")), button=_(N_("Disable %(email)s")) % {"email": email}, back="/console/staff",
        sentence=_(N_("Disable the staff account %(email)s (%(role)s): %(sessions)s, and %(tokens)s."))
        % {"email": email, "role": _(role), "sessions": ending, "tokens": stopping},
        figures={"staff": reach["id"], "email": email, "role": reach["role"], "sessions": sessions, "tokens": tokens},
        details=[_(N_("They cannot sign in until an admin enables the account again."))])


@staff_form(*POLICY.manage_staff)
@confirmed(_disable_consequence)
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
        return await _staff_list(request, session, status=422, errors={e.field: e.message for e in exc.errors})
    return redirect("/console/staff")


@require_role(*POLICY.own_api_tokens)
async def tokens_page(request: Request, session: StaffSession) -> Response:
    return await _token_list(request, session)


async def _token_list(request: Request, session: StaffSession, *, status: int = 200, new_token: str | None = None,
                      error: str | None = None) -> Response:
    """Your API tokens, also shown again with a new token (once) or a form's error."""
    tokens = await request.app.state.db.read(tokens_of, session.staff)
    return staff_render(request, "console/tokens.html", status, session=session, tokens=tokens, new_token=new_token,
                        error=error)


@staff_form(*POLICY.own_api_tokens)
async def token_create(request: Request, session: StaffSession, form: FormData) -> Response:
    try:
        raw, _id = await request.app.state.db.write(create_token, session.staff, str(form.get("name") or ""),
                                                    now=utcnow(), ip=client_ip(request))
    except InputError as exc:
        return await _token_list(request, session, status=422, error=str(exc))
    # Shown once, on this response only; the database keeps a hash.
    return await _token_list(request, session, status=201, new_token=raw)


async def _revoke_consequence(request: Request, session: StaffSession, form: FormData) -> Consequence | None:
    token_id = request.path_params["token_id"]  # an int64 by the route's convertor
    token = await request.app.state.db.read(token_of, session.staff, token_id)
    if token is None or token.revoked_at:
        return None  # not theirs (revoke_token answers 404) or revoked already: nothing happens
    _ = staff_gettext(request)
    used = _(N_("last used %(when)s UTC")) % {"when": token.last_used_at[:16].replace("T", " ")} if token.last_used_at \
        else _(N_("never used"))
    return Consequence(
        title=_(N_("Revoke an API token")), button=_(N_("Revoke %(name)s")) % {"name": token.name}, back="/console/tokens",
        sentence=_(N_("Revoke the API token \u201c%(name)s\u201d (%(used)s): every script that uses it is refused (401) from now on."))
        % {"name": token.name, "used": used},
        figures={"token": token.id, "name": token.name},
        details=[_(N_("A revoked token cannot be used again; create a new one for the script instead."))])


@staff_form(*POLICY.own_api_tokens)
@confirmed(_revoke_consequence)
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
