"""Confirmation before a destructive staff action (issue 19, item 3), without JavaScript.

A destructive form view is wrapped by `confirmed(describe)`. Its first post shows a page
that states the consequence with the real figures read from the database ("Void 44
unissued codes of batch 1 of campaign X") and a button that posts the same form again
with a `confirm` token. Only a post with a token that matches is carried out.

The token signs (with the secret key, for a limited time) a digest of the session's CSRF
token, the address, the other fields of the form, and the figures: a token is good for
one action by one session, and once the figures change (codes issued meanwhile, the
campaign edited), the old token no longer matches and the new figures are asked again.

The wrapper marks the view (`confirmation`), which the router therefore lists: tests find
every destructive route from the app itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from itsdangerous import BadSignature, TimestampSigner
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from promo.staff import StaffSession
from promo.views.staffauth import staff_render

CONFIRM_FIELD = "confirm"
MAX_AGE_SECONDS = 15 * 60  # a confirmation page left open longer asks again
FormView = Callable[[Request, StaffSession, FormData], Awaitable[Response]]


@dataclass(frozen=True)
class Consequence:
    """What a destructive action will do, in figures read just now."""

    title: str  # the page's heading, e.g. "Void codes"
    sentence: str  # the consequence, with the figures: "Void 44 unissued codes of batch 1 of campaign X (x)."
    button: str  # the confirming button: "Void 44 codes"
    back: str  # where Cancel leads
    figures: dict[str, Any]  # what the sentence states; a change re-asks
    details: list[str] = field(default_factory=list)  # more context, not bound


Describe = Callable[[Request, StaffSession, FormData], Awaitable[Consequence | None]]


def _fields(form: FormData) -> list[tuple[str, str]]:
    """The form's own fields, carried through the confirmation page (never files, the CSRF
    token, which the page renders afresh, or an old confirmation)."""
    return [(k, v) for k, v in form.multi_items() if k not in ("csrf", CONFIRM_FIELD) and not isinstance(v, UploadFile)]


def _digest(session: StaffSession, path: str, fields: list[tuple[str, str]], figures: dict[str, Any]) -> str:
    payload = json.dumps([session.csrf_token, path, sorted(fields), figures], sort_keys=True, separators=(",", ":"),
                         default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _signer(request: Request) -> TimestampSigner:
    return TimestampSigner(request.app.state.settings.secret_key, salt="promo.confirm")


def confirm_token(request: Request, session: StaffSession, form: FormData, consequence: Consequence) -> str:
    digest = _digest(session, request.url.path, _fields(form), consequence.figures)
    return _signer(request).sign(digest).decode()


def is_confirmed(request: Request, session: StaffSession, form: FormData, consequence: Consequence) -> bool:
    given = str(form.get(CONFIRM_FIELD) or "")
    if not given:
        return False
    try:
        signed = _signer(request).unsign(given, max_age=MAX_AGE_SECONDS).decode()
    except (BadSignature, UnicodeDecodeError):
        return False
    return signed == _digest(session, request.url.path, _fields(form), consequence.figures)


def confirmed(describe: Describe) -> Callable[[FormView], FormView]:
    """Wrap a destructive form view (inside `staff_form`, so the role and CSRF token are
    already checked). `describe` reads the consequence now; None means this post is not
    destructive (resuming a campaign, enabling an account) and goes straight through."""

    def decorate(view: FormView) -> FormView:
        @wraps(view)
        async def wrapper(request: Request, session: StaffSession, form: FormData) -> Response:
            consequence = await describe(request, session, form)
            if consequence is None or is_confirmed(request, session, form, consequence):
                return await view(request, session, form)
            stale = bool(form.get(CONFIRM_FIELD))
            return staff_render(request, "console/confirm.html", 409 if stale else 200, session=session,
                                consequence=consequence, stale=stale, action=request.url.path, fields=_fields(form),
                                token=confirm_token(request, session, form, consequence))

        # On the view itself, as require_role's allowed_roles (staffauth.py says why): which routes ask first
        wrapper.confirmation = describe  # type: ignore[attr-defined]
        return wrapper

    return decorate
