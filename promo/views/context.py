"""Per-request context for pages: language, country, signed-in session, CSRF token;
and the small helpers every page view shares (render, redirects, cookies)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from promo.auth import Session, load_session, needs_touch, touch_session
from promo.countries import country_codes, country_zone
from promo.errors import refuse_nul
from promo.i18n import Localizer, languages, negotiate, region_of
from promo.limits import ServiceLimits
from promo.templating import Templates
from promo.timeutil import utcnow

SESSION_COOKIE = "promo_session"
CSRF_COOKIE = "promo_csrf"
LANG_COOKIE = "promo_lang"
COUNTRY_COOKIE = "promo_country"
@dataclass
class PageContext:
    lang: str
    country: str | None
    session: Session | None
    csrf_token: str
    secure: bool
    set_csrf_cookie: bool = False
    country_chosen: bool = False  # the visitor chose `country` (else it is their language's region, if any)

    @property
    def account(self) -> str | None:
        return self.session.account_email if self.session else None

    @property
    def l10n(self) -> Localizer:
        return Localizer(self.lang)

    @property
    def zone(self) -> ZoneInfo | None:
        return country_zone(self.country)


def limits_of(request: Request) -> ServiceLimits:
    """The limits this app was built with (promo/app.py), for the views to pass to the services."""
    limits: ServiceLimits = request.app.state.limits
    return limits


def templates_of(request: Request) -> Templates:
    templates: Templates = request.app.state.templates
    return templates


async def page_context(request: Request) -> PageContext:
    # Every page and form post starts here: the cookies and Accept-Language are read once.
    cookies = request.cookies
    accept_language = request.headers.get("accept-language")
    lang = negotiate(cookies.get(LANG_COOKIE), accept_language)
    session = None
    raw = cookies.get(SESSION_COOKIE)
    if raw:
        now = utcnow()
        limits = limits_of(request)
        session = await request.app.state.db.lookup(load_session, raw, now=now, idle=limits.session_idle,
                                                    absolute=limits.session_absolute)
        if session and needs_touch(session, now):
            await request.app.state.db.write_grouped(touch_session, session.id_hash, now)  # short: joins a group
    anonymous_csrf = cookies.get(CSRF_COOKIE)
    chosen = _chosen_country(cookies)
    context = PageContext(
        lang=lang,
        country=chosen or _region(accept_language),
        country_chosen=chosen is not None,
        session=session,
        csrf_token=session.csrf_token if session else (anonymous_csrf or secrets.token_urlsafe(32)),
        secure=request.scope.get("scheme") == "https",  # request.url would build a whole URL
    )
    context.set_csrf_cookie = session is None and not anonymous_csrf
    return context


def _chosen_country(cookies: dict[str, str]) -> str | None:
    chosen = (cookies.get(COUNTRY_COOKIE) or "").upper()
    return chosen if chosen in country_codes() else None


def _region(accept_language: str | None) -> str | None:
    """Without a choice, the region of the preferred language (da-DK -> DK), else unknown:
    never guessed from the language alone (issue 15, item 11)."""
    region = region_of(accept_language)
    return region if region in country_codes() else None


FORM_FIELDS_MAX = 1000


async def read_form(request: Request, max_files: int = 0) -> FormData:
    """The posted form. Urlencoded bodies (every consumer form) are parsed here, because
    python-multipart's pure-Python parser took a tenth of a redemption request; decoding is
    Starlette's (bytes as latin-1, %-escapes as UTF-8, "+" a space).
    Anything else (multipart uploads) goes to Starlette, with at most `max_files` files (a
    400 beyond): a form that takes no file never holds a temporary file nobody closes."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        form = await request.form(max_files=max_files)
        refuse_nul(form.multi_items())  # a 400 naming the field, on both stores (errors.NUL_MESSAGE)
        return form
    body = (await request.body()).decode("latin-1")
    if body.count("&") >= FORM_FIELDS_MAX:
        raise HTTPException(400, f"a form has at most {FORM_FIELDS_MAX} fields")
    fields = urlencoded_fields(body)
    refuse_nul(fields)
    return _UrlencodedForm(cast(list[tuple[str, str | UploadFile]], fields))


class _UrlencodedForm(FormData):
    """A parsed urlencoded form whose get() is one dict lookup: Mapping.get goes through two
    Python calls (get, then __getitem__), and a form post reads five or six fields (issue 18).
    The same answer: both read the last value of a repeated field."""

    def get(self, key: Any, default: Any = None) -> Any:
        return self._dict.get(key, default)


def urlencoded_fields(body: str) -> list[tuple[str, str]]:
    """`parse_qsl(body, keep_blank_values=True)`, without its general machinery (argument
    coercion, a call per name and value): a redemption's five fields rarely need unquoting,
    and the parse was the largest part of reading the form (issue 18). Checked against
    Starlette's own parser over arbitrary bodies (tests/test_hot_path_helpers.py)."""
    fields = []
    for pair in body.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value)
        fields.append((name, value))
    return fields


def set_cookie(response: Response, ctx: PageContext, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=ctx.secure, path="/")


def render(request: Request, ctx: PageContext, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = templates_of(request).render(
        template, ctx.lang, ctx=ctx, request=request, languages=languages(), url_for=request.url_for, **values)
    response = HTMLResponse(html, status_code=status)
    if ctx.set_csrf_cookie:
        set_cookie(response, ctx, CSRF_COOKIE, ctx.csrf_token)
    return response


_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"  # what Starlette's RedirectResponse leaves unquoted in Location


class SeeOther(RedirectResponse):
    """A 303 with exactly the status, headers and body of `RedirectResponse(url, 303)`, built
    directly. Every form post ends in one, and Starlette's general path (render the body, build
    the headers, then a MutableHeaders to add Location) cost about as much as the session read
    (issue 18, bench/overhead.py). tests/test_hot_path_helpers.py compares the two."""

    def __init__(self, url: str) -> None:  # Response.__init__ on purpose not called: nothing it does is needed
        self.status_code = 303
        self.background = None
        self.body = b""
        self.raw_headers = [(b"content-length", b"0"), (b"location", quote(url, safe=_LOCATION_SAFE).encode("latin-1"))]


def redirect(url: str) -> RedirectResponse:
    return SeeOther(url)


def local_path(target: str | None, default: str = "/") -> str:
    """Only follow `next` to a path on this site (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
