"""create_app(settings): routes, middleware, lifespan and error handling. No logic here."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promo.config import Settings
from promo.db import Database
from promo.errors import InputError, NotFound, PromoError
from promo.logs import get_logger
from promo.metrics import Metrics
from promo.operations import operations_snapshot, readiness
from promo.timeutil import utcnow

log = get_logger("promo.http")


async def healthz(request: Request) -> Response:
    """The process is alive (no dependencies checked)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers and its migrations are current."""
    try:
        state = await request.app.state.db.read(readiness)
    except Exception as exc:  # any failure to reach the database means "not ready"
        log.warning("readyz.database_unavailable", error=type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if state["pending_migrations"]:
        return JSONResponse({"status": "unavailable", **state}, status_code=503)
    return JSONResponse({"status": "ok", **state})


async def metrics(request: Request) -> Response:
    app_metrics: Metrics = request.app.state.metrics
    try:
        app_metrics.set_from_database(await request.app.state.db.read(operations_snapshot, utcnow()))
    except Exception as exc:  # metrics must still answer when the database does not
        log.warning("metrics.database_unavailable", error=type(exc).__name__)
    return Response(app_metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def problem(status: int, title: str, errors: list[dict[str, Any]] | None = None, request_id: str | None = None) -> Response:
    body: dict[str, Any] = {"status": status, "title": title}
    if errors:
        body["errors"] = errors
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


async def on_promo_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    if isinstance(exc, InputError):
        return problem(400, "invalid input", [e.as_dict() for e in exc.errors], request_id)
    if isinstance(exc, NotFound):
        return problem(404, str(exc), request_id=request_id)
    return problem(getattr(exc, "status", 500), "error", request_id=request_id)


async def on_server_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    log.error("http.unhandled_error", error=type(exc).__name__, path=request.url.path)
    return PlainTextResponse(f"Internal error. Reference: {request_id}", status_code=500)


class RequestContext:
    """Pure ASGI middleware: a request id, one log line and metrics per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if 0 < len(supplied) <= 64 and supplied.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            name = getattr(route, "name", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(scope["method"], name, str(status)).inc()
            self.metrics.latency.labels(name).observe(elapsed)
            log.info("http.request", method=scope["method"], route=name, status=status, ms=round(elapsed * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id")


def create_app(settings: Settings) -> Starlette:
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_path, busy_timeout_ms=settings.database_busy_timeout_ms,
                      synchronous=settings.database_synchronous)
        try:
            await db.open()
        except (sqlite3.Error, OSError) as exc:
            log.error("database.open_failed", error=str(exc), path=str(settings.database_path))
        app.state.db = db
        try:
            yield
        finally:
            await db.close()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, name="ops.healthz"),
            Route("/readyz", readyz, name="ops.readyz"),
            Route("/metrics", metrics, name="ops.metrics"),
        ],
        exception_handlers={PromoError: on_promo_error, Exception: on_server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = app_metrics
    app.add_middleware(RequestContext, metrics=app_metrics)
    return app
