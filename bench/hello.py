"""The baseline: a minimal Starlette POST endpoint, served like Promo (uvicorn, one worker,
uvloop + httptools, no access log). Its requests/s is this machine's HTTP ceiling today."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/hello", hello, methods=["POST"])])
