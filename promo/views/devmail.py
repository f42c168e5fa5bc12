"""Development only: the messages the local SMTP sink received (mail.sink = true)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.errors import NotFound
from promo.mailsink import SinkHandler
from promo.views.context import page_context, render
from promo.views.email_frame import email_frame


def _sink(request: Request) -> SinkHandler:
    sink: SinkHandler | None = getattr(request.app.state, "sink", None)
    if sink is None:
        raise NotFound("page", request.url.path)
    return sink


async def mailbox(request: Request) -> Response:
    sink = _sink(request)
    ctx = await page_context(request)
    return render(request, ctx, "dev/mail.html", messages=list(sink.messages))


async def message(request: Request) -> Response:
    sink = _sink(request)
    ctx = await page_context(request)
    found = sink.get(request.path_params["number"])
    if found is None:
        raise NotFound("message", str(request.path_params["number"]))
    return render(request, ctx, "dev/mail_message.html", message=found)


async def message_html(request: Request) -> Response:
    """The message's HTML part alone, for the sandboxed frame on its page."""
    found = _sink(request).get(request.path_params["number"])
    if found is None or found.html is None:
        raise NotFound("message", str(request.path_params["number"]))
    return email_frame(found.html)


routes = [
    Route("/dev/mail", mailbox, name="dev.mail"),
    Route("/dev/mail/{number:int64}", message, name="dev.mail_message"),
    Route("/dev/mail/{number:int64}/html", message_html, name="dev.mail_html"),
]
