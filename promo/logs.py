"""Structured logs: JSON in production, readable in development, a request id on every
line, and never a whole reward code, product key, token or password (masked here as a
second line of defence; callers should not log them in the first place)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from promo.identifiers import mask_code

SECRET_KEYS = {"code", "token", "password", "secret", "secret_key", "product_key", "authorization", "cookie"}
# Anything shaped like a reward code or product key (groups of 5 joined by dashes).
_CODE_SHAPE = re.compile(r"\b[A-Za-z0-9]{5}(?:-[A-Za-z0-9]{5}){3,}\b")


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in SECRET_KEYS and value is not None:
            event[key] = mask_code(str(value))
        elif isinstance(value, str):
            event[key] = _CODE_SHAPE.sub(lambda m: mask_code(m.group(0)), value)
    return event


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
