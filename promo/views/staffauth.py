"""Staff sign-in and the role check every staff route goes through (server-side)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from promo.auth import TOUCH_AFTER, same_token
from promo.errors import InputError
from promo.i18n import N_, languages, negotiate, translations
from promo.identifiers import normalize_email
from promo.staff import StaffSession, end_staff_session, load_staff_session, touch_staff_session
from promo.timeutil import utcnow
from promo.views.access import STAFF_PREFIXES, home_for, may_open, menu_for, retry_page
from promo.views.context import LANG_COOKIE, client_ip, local_path, read_form, redirect

STAFF_COOKIE = "promo_staff"
STAFF_CSRF_COOKIE = "promo_staff_csrf"
View = Callable[[Request], Awaitable[Response]]


def staff_render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    session = values.get("session")
    role = session.staff.role if isinstance(session, StaffSession) else None
    router = request.app.router

    def may(path: str, method: str = "GET") -> bool:
        """For templates: whether this page's reader may open `path` (the routes' own policy)."""
        return may_open(router, role, path, method)

    # Staff read their language as customers do: the language chosen in the header (the
    # same cookie), else their browser's Accept-Language, else English (issue 19, item 5).
    lang = staff_language(request)
    html = request.app.state.templates.render(
        template, lang, request=request, may=may, menu=menu_for(router, role) if role else [],
        home=home_for(router, role) if role else "/staff/signin", ui_languages=languages(), **values)
    return HTMLResponse(html, status_code=status)


def staff_language(request: Request) -> str:
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def staff_gettext(request: Request) -> Callable[[str], str]:
    """The reader's gettext, for messages a view composes."""
    return translations(staff_language(request)).gettext


def _t(request: Request, message: str) -> str:
    return staff_gettext(request)(message)


def is_staff_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in STAFF_PREFIXES)


async def staff_error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """A 404 or 403 under a staff prefix, in the staff layout (its menu, its language), so a
    mistyped console address keeps the reader among the staff pages (issue 19, item 12)."""
    session = await current_staff(request)
    return staff_render(request, "staff/error.html", status, session=session, title=_t(request, title), message=_t(request, message))


def _cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")


async def current_staff(request: Request) -> StaffSession | None:
    raw = request.cookies.get(STAFF_COOKIE)
    if not raw:
        return None
    settings, now = request.app.state.settings, utcnow()
    session = await request.app.state.db.read(load_staff_session, raw, now=now,
                                              idle=timedelta(minutes=settings.session_idle_minutes),
                                              absolute=timedelta(hours=settings.session_max_hours))
    if session and session.last_seen_at and now - session.last_seen_at >= TOUCH_AFTER:
        await request.app.state.db.write(touch_staff_session, session.id_hash, now)
    return session


def expired_form(request: Request, session: StaffSession | None) -> HTMLResponse:
    """A form whose CSRF token is not the session's (sent from an older session, another
    tab after signing in again, or another site): nothing was done, and the reader gets the
    page the form came from to try again, not a verdict on their role (issue 19, item 4)."""
    role = session.staff.role if session else None
    return staff_render(request, "staff/expired.html", 403, session=session,
                        retry=retry_page(request.app.router, role, request.url.path))


def require_role(*roles: str) -> Callable[[Callable[[Request, StaffSession], Awaitable[Response]]], View]:
    """Signed-in staff with one of `roles`, else sign-in (401-ish redirect) or 403. The roles
    are recorded on the view (`allowed_roles`): the menu and links read them (views/access.py)."""

    def decorate(view: Callable[[Request, StaffSession], Awaitable[Response]]) -> View:
        @wraps(view)
        async def wrapper(request: Request) -> Response:
            session = await current_staff(request)
            if session is None:
                # After signing in, a GET comes back here; a form post cannot be replayed, so
                # its page comes back instead (a GET of a POST-only address would be a 405).
                back = request.url.path if request.method in ("GET", "HEAD") else retry_page(request.app.router, None, request.url.path)
                return redirect(f"/staff/signin?next={quote(back)}")
            if session.staff.role not in roles:
                return staff_render(request, "staff/forbidden.html", 403, session=session)
            try:
                return await view(request, session)
            finally:
                await request.close()  # an uploaded file's temporary copy, if the view read a form

        wrapper.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return wrapper

    return decorate


async def signin_form(request: Request) -> Response:
    token = request.cookies.get(STAFF_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = staff_render(request, "staff/signin.html", csrf=token, next=local_path(request.query_params.get("next")), error=None)
    _cookie(response, request, STAFF_CSRF_COOKIE, token)
    return response


async def signin_submit(request: Request) -> Response:
    form = await read_form(request)
    token = request.cookies.get(STAFF_CSRF_COOKIE)
    if not same_token(token, str(form.get("csrf") or "")):
        fresh = token or secrets.token_urlsafe(32)  # a form that works this time: the cookie may be gone
        response = staff_render(request, "staff/signin.html", 403, csrf=fresh, next=local_path(str(form.get("next") or "")),
                                error=_t(request, N_("This form has expired. Reload the page and try again.")))
        _cookie(response, request, STAFF_CSRF_COOKIE, fresh)
        return response
    next_path = local_path(str(form.get("next") or ""), "/")
    try:  # the grammar of every account address: nothing outside it names a staff account
        email = normalize_email(str(form.get("email") or ""), "email")
    except InputError:  # a sentence, as on the consumer sign-in, not "email: is required"
        return staff_render(request, "staff/signin.html", 422, csrf=token, next=next_path,
                            error=_t(request, N_("Enter your email address as your mail provider writes it, such as name@example.com.")))
    # The password is checked outside any transaction (promo/staff_signin.py, issue 14).
    result = await request.app.state.staff_signins.sign_in(
        request.app.state.db, email=email, password=str(form.get("password") or ""), now=utcnow(), ip=client_ip(request))
    if isinstance(result, str):
        messages = {"invalid": N_("The email address or password is not right."),
                    "locked": N_("Too many failed attempts: this account is locked for a while."),
                    "too_many": N_("Too many failed attempts from your address: try again later."),
                    "busy": N_("Too many sign-ins at once: try again in a few seconds.")}
        status = {"invalid": 401, "busy": 503}.get(result, 429)
        page = staff_render(request, "staff/signin.html", status, csrf=token, next=next_path, error=_t(request, messages[result]))
        if result == "busy":
            page.headers["Retry-After"] = "5"
        return page
    raw, session = result
    response = redirect(next_path if next_path != "/" else home_for(request.app.router, session.staff.role))  # where a role starts
    _cookie(response, request, STAFF_COOKIE, raw)
    return response


async def signout(request: Request) -> Response:
    session = await current_staff(request)
    form = await read_form(request)
    if session is not None:
        if not same_token(session.csrf_token, str(form.get("csrf") or "")):
            return expired_form(request, session)
        await request.app.state.db.write(end_staff_session, session.id_hash, now=utcnow())
    response = redirect("/staff/signin")
    response.delete_cookie(STAFF_COOKIE, path="/")
    return response


routes = [
    Route("/staff/signin", signin_form, methods=["GET"], name="staff.signin_form"),
    Route("/staff/signin", signin_submit, methods=["POST"], name="staff.signin"),
    Route("/staff/signout", signout, methods=["POST"], name="staff.signout"),
]
