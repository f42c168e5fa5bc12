"""create_app(settings): routes, middleware, lifespan and error handling. No logic here."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promo.audit_seal import AuditSealer
from promo.auth import SigninLinks
from promo.backends.configured import open_configured_store
from promo.config import Settings
from promo.db import DRIVER_ERRORS, is_unavailable
from promo.email_domains import SENDING_DOMAINS  # noqa: F401  (imported once: each registers its email contexts)
from promo.errors import InputError, NotFound, PromoError
from promo.http_policy import allow_header, no_store_unless_set
from promo.i18n import N_, languages, negotiate
from promo.jobs import ImportJobs
from promo.limits import ServiceLimits
from promo.logs import get_logger
from promo.mail import MailRelay
from promo.mailsink import start_sink
from promo.metrics import Metrics
from promo.metrics_access import metrics_refusal
from promo.operations import operations_snapshot, readiness
from promo.outbox import use_message_id_domain
from promo.staff_signin import StaffSignins
from promo.supervisor import Supervised
from promo.templating import Templates
from promo.timeutil import utcnow
from promo.views import (
    api,
    auditor,
    console,
    console_nonprofit,
    console_records,
    console_staff,
    consumer,
    consumer_account,
    devmail,
    nonprofit,
    preview,
    review,
    staffauth,
)
from promo.views import dashboard as dashboard_views

log = get_logger("promo.http")


async def healthz(request: Request) -> Response:
    """The process is alive (no dependencies checked)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers, its migrations are current, and every
    background worker of this process (the mail relay, the audit sealer) runs: "mail_relay": "down" with
    the type of what stopped it while it waits to be restarted. "pool": this process's
    connections (PostgreSQL: size, max, in_use, available, waiting; SQLite: its writer)."""
    workers: dict[str, Any] = {}
    workers_up = True
    for worker in request.app.state.workers:
        workers[worker.name] = worker.state
        if worker.state != "up":
            workers[f"{worker.name}_error"] = worker.last_error
            workers_up = False
    # The connections of this process's store (issue 18), and which process answered (of several).
    workers["pool"] = request.app.state.db.pool_stats()
    workers["pid"] = os.getpid()
    try:
        state = await request.app.state.db.read(readiness)
    except Exception as exc:  # any failure to reach the database means "not ready"
        log.warning("readyz.database_unavailable", error=type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable", **workers}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_BUSY_SECONDS)})
    if state["pending_migrations"] or not workers_up:
        return JSONResponse({"status": "unavailable", **state, **workers}, status_code=503)
    return JSONResponse({"status": "ok", **state, **workers})


async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    refused = metrics_refusal(request, settings.metrics_access, settings.metrics_token)
    if refused is not None:
        return refused
    app_metrics: Metrics = request.app.state.metrics
    app_metrics.set_from_writer(request.app.state.db)
    try:
        app_metrics.set_from_database(await request.app.state.db.read(operations_snapshot, utcnow()))
    except Exception as exc:  # metrics must still answer when the database does not
        log.warning("metrics.database_unavailable", error=type(exc).__name__)
    return Response(app_metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def problem(status: int, title: str, errors: list[dict[str, Any]] | None = None, request_id: str | None = None) -> Response:
    return api.problem(status, title, errors, request_id)


_MACHINE_PATHS = ("/api/", "/healthz", "/readyz", "/metrics")


async def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    from promo.views.context import page_context, render

    try:
        if status in (403, 404) and staffauth.is_staff_path(request.url.path):
            return await staffauth.staff_error_page(request, status, title, message)
        ctx = await page_context(request)
        return render(request, ctx, "error.html", status, title=ctx.l10n.gettext(title), message=ctx.l10n.gettext(message))
    except Exception:  # the error page must never fail: fall back to plain text
        return PlainTextResponse(title, status_code=status)


async def on_promo_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    if not request.url.path.startswith(_MACHINE_PATHS):
        if isinstance(exc, NotFound):
            return await _error_page(request, 404, N_("Page not found"), N_("There is nothing at this address."))
        if isinstance(exc, InputError):
            return await _error_page(request, 400, N_("Something is wrong with the request"), str(exc))
    if isinstance(exc, InputError):
        return problem(400, "invalid input", [e.as_dict() for e in exc.errors], request_id)
    if isinstance(exc, NotFound):
        return problem(404, str(exc), request_id=request_id)
    return problem(getattr(exc, "status", 500), "error", request_id=request_id)


async def on_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away while sending its body: nothing to answer, nothing done."""
    log.info("http.client_disconnected", path=request.url.path)
    return Response(status_code=400)


RETRY_AFTER_BUSY_SECONDS = 5


async def on_database_error(request: Request, exc: Exception) -> Response:
    """A database that refused for now (its write lock held past the busy timeout, a full
    disk) is a 503 with Retry-After, not a 500. Nothing was saved: the transaction never
    began or was rolled back, so the client may simply try again (and an idempotency key
    makes a retried redemption safe). Any other database error is a bug: re-raised, a 500."""
    if not is_unavailable(exc):
        raise exc
    request_id = request.scope.get("state", {}).get("request_id")
    log.warning("database.unavailable", error=str(exc), path=request.url.path)
    if request.url.path.startswith(_MACHINE_PATHS):
        response = problem(503, "the database is busy; try again shortly", request_id=request_id)
    else:
        response = _unavailable_page(request, N_("Busy right now"),
                                     N_("We could not finish this just now, and nothing was changed. "
                                        "Please try again in a moment."))
    response.headers["Retry-After"] = str(RETRY_AFTER_BUSY_SECONDS)
    return response


def _unavailable_page(request: Request, title: str, message: str) -> Response:
    """The 503 page, in the reader's language, built without the database (no session lookup:
    the database is what is missing, and waiting for it again would only delay the answer)."""
    from promo.views.context import LANG_COOKIE, PageContext, render

    try:
        ctx = PageContext(lang=negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")),
                          country=None, country_chosen=False, session=None, csrf_token=secrets.token_urlsafe(32),
                          secure=request.scope.get("scheme") == "https")
        return render(request, ctx, "error.html", 503, title=ctx.l10n.gettext(title), message=ctx.l10n.gettext(message))
    except Exception:  # the error page must never fail: fall back to plain text
        return PlainTextResponse(title, status_code=503)


async def on_server_error(request: Request, exc: Exception) -> Response:
    """Starlette calls this from ServerErrorMiddleware, outside every middleware of the app, so
    RequestContext never sees this response: it gets the same headers here."""
    request_id = request.scope.get("state", {}).get("request_id") or "unknown"
    log.error("http.unhandled_error", error=type(exc).__name__, path=request.url.path)
    if request.url.path.startswith(_MACHINE_PATHS):
        response: Response = problem(500, "internal error", request_id=request_id)
    else:
        response = PlainTextResponse(f"Internal error. Reference: {request_id}", status_code=500)
    response.headers["Cache-Control"] = "no-store"
    response.raw_headers.extend(response_headers(request.scope, request_id))
    return response


async def on_http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if status == 404 and not request.url.path.startswith(_MACHINE_PATHS):
        return await _error_page(request, 404, N_("Page not found"), N_("There is nothing at this address."))
    if status == 404 and request.url.path.startswith("/api/"):  # e.g. an id that is no id (promo/views/ids.py)
        return problem(404, "not found", request_id=request.scope.get("state", {}).get("request_id"))
    if status == 405:
        allow = allow_header(request.app.router.routes, request.scope, (getattr(exc, "headers", None) or {}).get("Allow"))
        return PlainTextResponse("Method not allowed", status_code=405, headers={"Allow": allow})
    if status == 403 and not request.url.path.startswith(_MACHINE_PATHS):
        return await _error_page(request, 403, N_("Not allowed"), N_("You cannot open this page."))
    return PlainTextResponse(str(getattr(exc, "detail", "")), status_code=status)


SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # sign-in links must never leak through Referer
    (b"x-frame-options", b"DENY"),
]
_OWN_POLICY = frozenset({b"content-security-policy", b"x-frame-options"})  # a response may set its own


_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def response_headers(scope: Scope, request_id: str, own: frozenset[bytes] = frozenset()) -> list[tuple[bytes, bytes]]:
    """What every response carries: its request id and the security headers, but for those
    the response set itself (`own`: an email shown in a frame, promo/views/email_frame.py)."""
    security = [h for h in SECURITY_HEADERS if h[0] not in own] if own else SECURITY_HEADERS  # most set none of their own
    headers = [(b"x-request-id", request_id.encode()), *security]
    if scope.get("scheme") == "https":
        headers.append(_HSTS)
    return headers


class RequestContext:
    """Pure ASGI middleware: a request id, the headers every answer carries, one log line and
    metrics per request.

    It runs on every request, so it does no work it can skip (issue 18, bench/overhead.py):
    the security headers are one prebuilt list, and the request's log line is not even built
    when `log_requests` is off (logging.level above INFO, as in production under load: the
    structlog proxy built a logger per call only to drop the line)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True):
        self.app, self.metrics, self.log_requests = app, metrics, log_requests
        # Unique without a syscall per request (uuid4 reads os.urandom): this process's
        # random prefix and a counter. Ids tie log lines together; they are not secrets.
        prefix = secrets.token_hex(8)
        self._ids = (f"{prefix}{n:016x}" for n in itertools.count(1))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = ""
        for name, value in scope.get("headers") or ():  # the last one counts, as a dict of them would say
            if name == b"x-request-id":
                supplied = value.decode("latin-1")
        request_id = supplied if 0 < len(supplied) <= 64 and supplied.isprintable() else next(self._ids)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                no_store_unless_set(scope["path"], headers)  # before ours are added: none of them is Cache-Control
                own = frozenset(name.lower() for name, _ in headers if name.lower() in _OWN_POLICY) if headers else frozenset()
                headers.extend(response_headers(scope, request_id, own))
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            name = getattr(route, "name", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], name, status, elapsed)
            if self.log_requests:
                log.info("http.request", method=scope["method"], route=name, status=status, ms=round(elapsed * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id")


STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def favicon(request: Request) -> Response:
    """Browsers ask /favicon.ico of pages that link none (a CSV, a JSON answer): the same SVG.
    Like every answer outside /static/ it is not stored by caches (tests/test_http_policy.py)."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


def create_app(settings: Settings, *, start_relay: bool = True) -> Starlette:
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        use_message_id_domain(settings.mail.message_id_domain)  # every email the services queue from now on
        db = await open_configured_store(settings)
        app.state.db = db
        app.state.jobs = ImportJobs(db)
        sink_server = None
        if settings.mail.sink:
            sink_server, app.state.sink = await start_sink("127.0.0.1", settings.mail.sink_port)
            log.info("mail.sink_started", port=settings.mail.sink_port, page="/dev/mail")
        workers: list[Supervised] = app.state.workers
        if start_relay and settings.mail.relay:
            relay = MailRelay(db, settings.mail, app.state.templates, settings.public_url)
            app.state.wake_relay = relay.wake
            # stop: finish the message in hand, then leave the loop; restarted if anything escapes run()
            workers.append(Supervised("mail_relay", relay.run, stop=relay.stop))
        if settings.database_url:  # PostgreSQL: audit events are chained after COMMIT (issue 18; SQLite seals at append)
            sealer = app.state.audit_sealer = AuditSealer(db)
            workers.append(Supervised("audit_sealer", sealer.run, stop=sealer.stop))
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            await asyncio.gather(*(worker.stop(timeout=5) for worker in workers))
            workers.clear()
            await app.state.jobs.close()
            if sink_server is not None:
                sink_server.close()
                await sink_server.wait_closed()
            await db.close()

    app = Starlette(
        routes=[
            # The consumer pages first: the router tries routes in order, and the redemption
            # is the hot path (issue 18). No consumer path overlaps the ones below it.
            *consumer.routes,
            Route("/healthz", healthz, name="ops.healthz"),
            Route("/readyz", readyz, name="ops.readyz"),
            Route("/metrics", metrics, name="ops.metrics"),
            Route("/favicon.ico", favicon, name="favicon"),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            *consumer_account.routes,
            *staffauth.routes,
            *auditor.routes,
            *review.routes,
            *preview.routes,
            *console.routes,
            *dashboard_views.routes,
            *console_staff.routes,
            *console_nonprofit.routes,
            *console_records.routes,
            *nonprofit.routes,
            *api.routes,
            *devmail.routes,
        ],
        exception_handlers={PromoError: on_promo_error, HTTPException: on_http_error, ClientDisconnect: on_client_disconnect,
                            **dict.fromkeys(DRIVER_ERRORS, on_database_error), Exception: on_server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.limits = ServiceLimits.from_settings(settings)  # what the views pass to the services (limits_of)
    app.state.metrics = app_metrics
    app.state.templates = Templates(auto_reload=settings.environment == "development")
    app.state.languages = languages()
    app.state.sink = None
    app.state.wake_relay = lambda: None
    app.state.workers = app_metrics.workers  # supervised background workers, reported by /readyz and /metrics
    app.state.staff_signins = StaffSignins()
    if settings.secret_key:
        app.state.signin_links = SigninLinks(settings.secret_key, timedelta(minutes=settings.signin_link_minutes),
                                             public_url=settings.public_url)
    app.add_middleware(RequestContext, metrics=app_metrics,
                       log_requests=logging.getLevelName(settings.logging_level) <= logging.INFO)
    return app
