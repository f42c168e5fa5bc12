"""The guards views share: who may post what, checked before a view runs.

Consumer side: a signed-in account (else sign in first) and the session's CSRF token
(else 403). Staff side: a role from the policy table (promo/staff.py `POLICY`, enforced by
`require_role` in staffauth.py) and the session's CSRF token (else the expired-form page),
with a size limit on uploads read before the form is parsed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from promo.auth import same_token
from promo.errors import refuse_nul
from promo.i18n import N_
from promo.staff import StaffSession
from promo.views.context import PageContext, page_context, read_form, redirect, render
from promo.views.staffauth import expired_form, require_role, staff_gettext, staff_render

MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # a million codes is about 30 MB
FormView = Callable[[Request, StaffSession, FormData], Awaitable[Response]]
View = Callable[[Request], Awaitable[Response]]


# ---- consumers ------------------------------------------------------------------------------

def csrf_ok(ctx: PageContext, form: Any) -> bool:
    return same_token(ctx.csrf_token, form.get("csrf"))


def forbidden(request: Request, ctx: PageContext) -> Response:
    """A consumer form whose CSRF token is not the session's: nothing was done."""
    return render(request, ctx, "error.html", 403, title=ctx.l10n.gettext("This form has expired"),
                  message=ctx.l10n.gettext("Please go back, reload the page and try again."))


def sign_in_first(request: Request) -> Response:
    return redirect(f"/signin?next={request.url.path}")


async def signed_in_post(request: Request, max_files: int = 0) -> tuple[PageContext, Any] | Response:
    """The prelude of every signed-in form: a session, else sign in; a valid CSRF token, else 403."""
    ctx = await page_context(request)
    if ctx.session is None:
        return sign_in_first(request)
    form = await read_form(request, max_files)
    if not csrf_ok(ctx, form):
        await form.close()  # an uploaded file's temporary copy
        return forbidden(request, ctx)
    return ctx, form


def signed_in_page(view: Callable[[Request, PageContext], Awaitable[Response]]) -> View:
    """A page for signed-in accounts: the view gets the context; anyone else signs in first."""
    @wraps(view)
    async def wrapper(request: Request) -> Response:
        ctx = await page_context(request)
        if ctx.session is None:
            return sign_in_first(request)
        return await view(request, ctx)

    return wrapper


def signed_in_form(view: Callable[[Request, PageContext, Any], Awaitable[Response]]) -> View:
    """A form post of a signed-in account with a valid CSRF token (else sign-in, or 403)."""
    @wraps(view)
    async def wrapper(request: Request) -> Response:
        checked = await signed_in_post(request)
        if isinstance(checked, Response):
            return checked
        ctx, form = checked
        return await view(request, ctx, form)

    return wrapper


# ---- staff ----------------------------------------------------------------------------------

def actor(session: StaffSession) -> str:
    """How the audit log names a staff member acting through the console."""
    return f"staff:{session.staff.email}"


async def checked_form(request: Request, session: StaffSession) -> FormData | Response:
    """The posted form if its CSRF token is the session's, else the expired-form page."""
    length = request.headers.get("content-length")
    if length and length.isascii() and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        gettext = staff_gettext(request)
        return staff_render(request, "console/message.html", 413, session=session, title=gettext(N_("File too large")),
                            message=gettext(N_("Uploads are limited to %(mb)s MB.")) % {"mb": MAX_UPLOAD_BYTES // (1024 * 1024)})
    form = await request.form(max_part_size=4 * 1024 * 1024)
    if not same_token(session.csrf_token, str(form.get("csrf") or "")):
        return expired_form(request, session)
    refuse_nul(form.multi_items())  # a 400 naming the field, on both stores (errors.NUL_MESSAGE)
    return form


def staff_form(*roles: str) -> Callable[[FormView], View]:
    """A form post by staff with one of `roles` and the session's CSRF token: the view gets the form."""

    def decorate(view: FormView) -> View:
        @require_role(*roles)
        @wraps(view)
        async def wrapper(request: Request, session: StaffSession) -> Response:
            form = await checked_form(request, session)
            if isinstance(form, Response):
                return form
            return await view(request, session, form)

        return wrapper

    return decorate
