"""Who may read /metrics (metrics.access): anyone, this machine only, or a bearer token.

"loopback" means a direct connection from this machine: a request that came through a
proxy (it carries X-Forwarded-For or Forwarded) is refused even from 127.0.0.1, since a
reverse proxy on the same host would otherwise make every outside client look local.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

_PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def is_direct_loopback(request: Request) -> bool:
    if request.client is None or any(name in request.headers for name in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def has_token(request: Request, token: str | None) -> bool:
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    # Bytes, not str: compare_digest refuses non-ASCII str (a 500 instead of a 401).
    return hmac.compare_digest(supplied.strip().encode("utf-8"), token.encode("utf-8"))


def metrics_refusal(request: Request, access: str, token: str | None) -> Response | None:
    """None when the request may read /metrics; otherwise the answer to send instead."""
    if access == "public":
        return None
    if access == "loopback":
        if is_direct_loopback(request):
            return None
        return PlainTextResponse("Forbidden: /metrics is served to this machine only (metrics.access).", status_code=403)
    if has_token(request, token):
        return None
    return PlainTextResponse("Unauthorized: /metrics needs its bearer token (metrics.access).", status_code=401,
                             headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
