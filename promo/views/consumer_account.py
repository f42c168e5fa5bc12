"""Consumer sign-in by email link, and signing out. A link is asked for with the same
answer whether the address is known, new or rate-limited (no enumeration); the session
starts when the link is opened, once."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.auth import SigninLinks, TokenExpired, TokenInvalid, consume_signin, end_session, request_signin
from promo.errors import InputError
from promo.identifiers import normalize_email
from promo.timeutil import utcnow
from promo.views.context import SESSION_COOKIE, PageContext, client_ip, local_path, page_context, read_form, redirect, render, set_cookie
from promo.views.guards import csrf_ok, forbidden


async def signin_form(request: Request) -> Response:
    ctx = await page_context(request)
    return render(request, ctx, "consumer/signin.html", next=local_path(request.query_params.get("next")), error=None, email="")


async def signin_submit(request: Request) -> Response:
    ctx = await page_context(request)
    form = await read_form(request)
    if not csrf_ok(ctx, form):
        return forbidden(request, ctx)
    next_path = local_path(str(form.get("next") or ""))
    try:
        email = normalize_email(str(form.get("email") or ""), "email")
    except InputError:
        return render(request, ctx, "consumer/signin.html", 422, next=next_path, email=str(form.get("email") or ""),
                      error=ctx.l10n.gettext("Enter an email address as your mail provider writes it, such as "
                                             "name@example.com, without spaces, quotes, brackets or comments."))
    links: SigninLinks = request.app.state.signin_links
    await request.app.state.db.write_grouped(request_signin, email=email, links=links, locale=ctx.lang, now=utcnow(),
                                             ip=client_ip(request))
    request.app.state.wake_relay()
    # The same page whether the address is known, new or rate-limited: no enumeration.
    response = redirect("/signin/sent")
    set_cookie(response, ctx, "promo_next", next_path, 3600)
    return response


async def signin_sent(request: Request) -> Response:
    ctx = await page_context(request)
    return render(request, ctx, "consumer/signin_sent.html")


async def signin_link(request: Request) -> Response:
    ctx = await page_context(request)
    links: SigninLinks = request.app.state.signin_links
    try:
        email, jti = links.read(request.path_params["token"])
    except TokenExpired:
        return _link_failed(request, ctx, ctx.l10n.gettext("This sign-in link has expired. Ask for a new one."))
    except TokenInvalid:
        return _link_failed(request, ctx, ctx.l10n.gettext("This sign-in link is not valid. Ask for a new one."))
    started = await request.app.state.db.write_grouped(consume_signin, email=email, jti=jti, now=utcnow(), ip=client_ip(request))
    if started is None:
        return _link_failed(request, ctx, ctx.l10n.gettext("This sign-in link has already been used. Ask for a new one."))
    raw, _session = started
    response = redirect(local_path(request.cookies.get("promo_next"), "/"))
    set_cookie(response, ctx, SESSION_COOKIE, raw)  # a session cookie: gone when the browser closes
    response.delete_cookie("promo_next", path="/")
    return response


def _link_failed(request: Request, ctx: PageContext, message: str) -> Response:
    return render(request, ctx, "consumer/signin.html", 400, next="/", email="", error=message)


async def signout(request: Request) -> Response:
    ctx = await page_context(request)
    form = await read_form(request)
    if ctx.session is not None:
        if not csrf_ok(ctx, form):
            return forbidden(request, ctx)
        await request.app.state.db.write(end_session, ctx.session.id_hash, now=utcnow(), ip=client_ip(request))
    response = redirect("/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


routes = [
    Route("/signin", signin_form, methods=["GET"], name="consumer.signin_form"),
    Route("/signin", signin_submit, methods=["POST"], name="consumer.signin"),
    Route("/signin/sent", signin_sent, name="consumer.signin_sent"),
    Route("/signin/{token}", signin_link, name="consumer.signin_link"),
    Route("/signout", signout, methods=["POST"], name="consumer.signout"),
]
