"""Who may read /metrics (metrics.access): anyone, this machine only, or a bearer token.

"loopback" means a direct connection from this machine: a request that came through a
proxy (it carries X-Forwarded-For or Forwarded) is refused even from 127.0.0.1, since a
reverse proxy on the same host would otherwise make every outside client look local.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from promo.auth import bearer_token, same_token

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


def metrics_refusal(request: Request, access: str, token: str | None) -> Response | None:
    """None when the request may read /metrics; otherwise the answer to send instead."""
    if access == "public":
        return None
    if access == "loopback":
        if is_direct_loopback(request):
            return None
        return PlainTextResponse("Forbidden: /metrics is served to this machine only (metrics.access).", status_code=403)
    if same_token(token, bearer_token(request.headers)):  # compared as bytes
        return None
    return PlainTextResponse("Unauthorized: /metrics needs its bearer token (metrics.access).", status_code=401,
                             headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
