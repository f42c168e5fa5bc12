"""An email's HTML part as a page of its own, for a sandboxed <iframe> on a staff or
development page (/dev/mail, the campaign preview). The HTML is ours, but it holds values
customers and staff typed (names, addresses, reasons; escaped when rendered): this page
runs no script whatever it holds, fetches nothing, posts nothing, and only this site may
frame it."""

from __future__ import annotations

from starlette.responses import HTMLResponse

# 'unsafe-inline' styles only: an email's styles are inline (mail clients need them so).
EMAIL_FRAME_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
                      "base-uri 'none'; frame-ancestors 'self'; sandbox")


def email_frame(html: str) -> HTMLResponse:
    """The page; its Content-Security-Policy and X-Frame-Options replace the site's own
    (which forbid framing), see promo.app.response_headers."""
    return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_FRAME_POLICY, "X-Frame-Options": "SAMEORIGIN"})
