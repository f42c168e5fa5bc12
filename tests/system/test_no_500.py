"""No request can cause a 500 (issue 14, section 4). Every route of the app, enumerated from
its router, is walked as each kind of caller (anonymous, a signed-in consumer, each staff
role, an API token, a partner) with hostile path ids, query strings, form bodies (with a
valid session and CSRF token, so they reach the handler) and headers; the answer is never a
5xx and nothing logs a traceback or an unhandled error. The 500 page itself keeps the
security headers and the request id."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from promo.app import SECURITY_HEADERS, create_app
from promo.config import Settings, load_settings
from promo.db import transaction
from promo.mailsink import SinkHandler
from promo.nonprofit.validation_codes import add_partner
from promo.paging import MAX_ID as INT64_MAX
from promo.paging import parse_id
from tests.support.console import new_token, signed_in
from tests.support.database import product_key
from tests.support.mailserver import MailServer
from tests.support.web import follow_link, redeem_form, sign_in, submit

HOSTILE_IDS = ["0", "1", "-1", "+1", "01", "1.0", "1e3", "0x10", "²", "٣", "１", "1_000", " 1", "1 ", "1\n",
               str(INT64_MAX), str(INT64_MAX + 1), str(2 ** 64), "9" * 40, "%00", "\x00", "é", "\u202e1", "<script>",
               "..", "A" * 4000]
HOSTILE_VALUES = ["", "-1", "²", "9" * 30, "0x10", "\x00", "é\u202e", "<script>alert(1)</script>", "' OR 1=1 --",
                  "a\r\nb", "A" * 5000, "../../etc/passwd", "x<mallory@evil.example>", "yes", "disable"]
QUERY_KEYS = ["before", "campaign", "code", "country", "from", "lang", "next", "product_key", "resent", "source", "tag",
              "outcome", "rule", "since", "until", "account", "sku", "purchased_at", "activated_at"]
FORM_FIELDS = ["email", "password", "next", "product_key", "country", "accept_terms", "idempotency_key", "sku",
               "purchased_at", "activated_at", "reason", "action", "role", "name", "first_name", "last_name", "not_installed",
               "code", "qty.DON-WINSRV-STD", "slug", "timezone", "short_name", "registration_number", "mission", "org_type",
               "updated_at", "clone_of", "limit_per_account", "countries", "file"]
DEFAULT_PARAMS = {"slug": "open-today", "token": "x", "path": "promo.css"}
SIGN_OUTS = ("/signout", "/staff/signout")  # a valid form there ends the caller's session: walked with bad tokens only
STAFF_ROLES = ("admin", "marketer", "auditor", "support")


@dataclass
class Caller:
    """Who is asking: their cookies (a session and its CSRF token) or their Authorization header."""

    name: str
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def cookie_header(self) -> bytes:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode()


@dataclass
class Walk:
    """One client on the app's own event loop (TestClient with its lifespan), whose cookie jar
    stays empty: each request carries its caller's cookies, so callers never mix."""

    client: TestClient
    callers: dict[str, Caller]
    failures: list[str] = field(default_factory=list)
    requests: int = 0

    def request(self, caller: Caller, method: str, url: str, *, data: dict[str, str] | None = None,
                content: bytes | None = None, headers: dict[Any, Any] | None = None) -> Any:
        self.client.cookies.clear()
        response = self.client.request(method, url, data=data, content=content,
                                       headers={b"cookie": caller.cookie_header(), **caller.headers, **(headers or {})})
        self.client.cookies.clear()
        self.requests += 1
        return response

    def send(self, caller: Caller, method: str, url: str, **kwargs: Any) -> None:
        response = self.request(caller, method, url, **kwargs)
        if response.status_code >= 500 or "Traceback" in response.text:
            data = kwargs.get("data")
            self.failures.append(f"{caller.name} {method} {url[:120]!r} {str(data)[:80] if data else ''} -> "
                                 f"{response.status_code} {response.text[:80]!r}")


def routes(app: Any) -> list[Route | Mount]:
    return [r for r in app.routes if isinstance(r, Route | Mount)]


def methods(route: Route | Mount) -> list[str]:
    return sorted((route.methods or set()) - {"HEAD"}) if isinstance(route, Route) else ["GET"]


def url(route: Route | Mount, values: dict[str, str]) -> str:
    """The route's path with each parameter replaced by a value, percent-encoded as a client would."""
    if isinstance(route, Mount):
        return f"{route.path}/{quote(values.get('path', DEFAULT_PARAMS['path']), safe='')}"
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: quote(values.get(m.group(1), _default(route, m.group(1))), safe=""),
                  route.path)


def _default(route: Route, name: str) -> str:
    if name == "decision":
        return "complete" if "/returns/" in route.path else "approve"
    return DEFAULT_PARAMS.get(name, "1")


def params(route: Route | Mount) -> list[str]:
    return ["path"] if isinstance(route, Mount) else list(route.param_convertors)


# Who gets past each area's access check to every handler there: they get every hostile value.
# The other callers (the other staff roles too) get a few, and are refused as cleanly.
REACH = {"/console/": ("admin",), "/audit/": ("auditor",), "/review/": ("support",), "/staff/": ("admin",),
         "/api/": ("api", "partner")}
OTHERS = (*STAFF_ROLES, "consumer", "api", "anonymous")


def callers_for(walk: Walk, path: str) -> list[Caller]:
    """The callers whose requests reach this route's handler."""
    names = next((names for prefix, names in REACH.items() if path.startswith(prefix)), ("consumer",))
    return [walk.callers[n] for n in names]


def turned_away(walk: Walk, path: str) -> list[Caller]:
    """Everyone else, who should be refused as cleanly."""
    reach = {c.name for c in callers_for(walk, path)}
    return [walk.callers[n] for n in OTHERS if n not in reach]


def form(caller: Caller, value: str) -> dict[str, str]:
    return {**dict.fromkeys(FORM_FIELDS, value), "csrf": caller.csrf or ""}


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    """One caller of each kind, signed in through the real forms, against a shop with an open
    offer and a reward, the nonprofit program, and a development mail sink (so every route has
    data to find). One app for the module: the walks are read-mostly, and setting up costs
    seconds (argon2 per staff sign-in)."""
    from tests.support.database import prepare_database
    from tests.support.nonprofit import install_program
    from tests.support.web import add_open_campaign

    folder = tmp_path_factory.mktemp("walk")
    (folder / "config.toml").write_text('[database]\npath = "promo.sqlite3"\n[mail]\nsink = false\n', encoding="utf-8")
    base = load_settings(folder / "config.toml", environ={"PROMO_SECURITY_SECRET_KEY": "x" * 40})
    smtp = MailServer().start()
    settings = replace(base, public_url="http://testserver",
                       mail=replace(base.mail, port=smtp.port, timeout_seconds=3, retry_base_seconds=1))
    shop = prepare_database(settings.database_path)
    add_open_campaign(shop, keys=3, codes=5)
    install_program(shop, keys_per_product=1, now=datetime.now(UTC))
    try:
        with TestClient(create_app(settings), follow_redirects=False, raise_server_exceptions=False) as client:
            client.app.state.sink = SinkHandler()  # type: ignore[attr-defined]
            follow_link(client, sign_in(client, smtp))
            assert submit(client, redeem_form(client), product_key(1)).status_code == 303
            callers = {"anonymous": Caller("anonymous"), "consumer": Caller("consumer", dict(client.cookies), shop.execute(
                "SELECT csrf_token FROM sessions WHERE ended_at IS NULL ORDER BY created_at DESC").fetchone()[0])}
            for role in STAFF_ROLES:
                signed_in(client, shop, role)
                callers[role] = Caller(role, dict(client.cookies), shop.execute(
                    "SELECT s.csrf_token FROM staff_sessions s JOIN staff f ON f.id = s.staff_id"
                    " WHERE f.role = ? AND s.ended_at IS NULL", (role,)).fetchone()[0])
                if role == "admin":
                    callers["api"] = Caller("api", headers={"Authorization": f"Bearer {new_token(client)}"})
            client.cookies.clear()
            with transaction(shop):
                partner = add_partner(shop, "Walker", now=datetime.now(UTC), actor="test")
            callers["partner"] = Caller("partner", headers={"Authorization": f"Bearer {partner}"})
            yield Walk(client, callers)
    finally:
        shop.close()
        smtp.stop()


def assert_whole(walk: Walk, capfd: pytest.CaptureFixture[str]) -> None:
    out, err = capfd.readouterr()
    assert walk.failures == [], f"{len(walk.failures)} of {walk.requests} requests failed:\n" + "\n".join(walk.failures[:300])
    assert "Traceback" not in out + err and "http.unhandled_error" not in out + err
    for role in STAFF_ROLES:  # and every caller is still signed in: the walk ended no session
        assert walk.request(walk.callers[role], "GET", "/review/").status_code in (200, 403), role
    assert walk.request(walk.callers["consumer"], "GET", "/rewards").status_code == 200


# ---- the walk

def test_every_route_answers_hostile_path_ids_without_a_500(walk: Walk, capfd: pytest.CaptureFixture[str]) -> None:
    app = walk.client.app
    for route in routes(app):
        for method in methods(route):
            valid = method != "GET" and not route.path.startswith(SIGN_OUTS)  # a form that reaches the handler
            for name in params(route):
                for value in HOSTILE_IDS:
                    for caller in callers_for(walk, route.path):
                        walk.send(caller, method, url(route, {name: value}), data=form(caller, value) if valid else None)
                for value in ("²", str(2 ** 64), "-1"):
                    for caller in turned_away(walk, route.path):
                        walk.send(caller, method, url(route, {name: value}), data=form(caller, value) if valid else None)
    assert walk.requests > 1500
    assert_whole(walk, capfd)


def test_every_route_answers_hostile_queries_forms_and_headers_without_a_500(walk: Walk,
                                                                              capfd: pytest.CaptureFixture[str]) -> None:
    app = walk.client.app
    for route in routes(app):
        target = url(route, {})
        sign_out = route.path.startswith(SIGN_OUTS)
        for method in methods(route):
            for caller in callers_for(walk, route.path):
                for value in HOSTILE_VALUES:
                    query = urlencode(dict.fromkeys(QUERY_KEYS, value[:2000]))  # a URL stays under httpx's 64 KiB
                    if method == "GET":
                        walk.send(caller, "GET", f"{target}?{query}")
                    elif not sign_out:
                        walk.send(caller, method, f"{target}?{query}", data=form(caller, value))
                for extra in hostile_headers(caller):
                    walk.send(caller, method, target, headers=extra, data=None if method == "GET" or sign_out else form(caller, "x"))
                if method != "GET" and not sign_out:
                    for content_type, body in content_lies(caller):
                        walk.send(caller, method, target, content=body, headers={"content-type": content_type})
            for caller in turned_away(walk, route.path):
                query = urlencode(dict.fromkeys(QUERY_KEYS, "²"))
                walk.send(caller, method, f"{target}?{query}", headers=hostile_headers(caller)[1],
                          data=None if method == "GET" or sign_out else form(caller, "²"))
    assert_whole(walk, capfd)


def hostile_headers(caller: Caller) -> list[dict[Any, Any]]:
    """Garbage cookies (instead of, and beside, the caller's own), language, request id,
    credentials, host and content type."""
    garbage = b"promo_session=\xff\xfe; promo_csrf=t\xc3\xb6k\xc3\xa9n; promo_lang=\x01; promo_country=\xc2\xb2; " \
              b"promo_staff=\xff; promo_staff_csrf=\xe9; promo_next=//evil.example; =;;==; x; " + b"x" * 3000
    noise = {b"accept-language": b"*;q=x, ;;;, \xc2\xb2\xc2\xb2, en-US;q=1e999, da;q=-1, nb;q=nan, -, ;q=, " + b"a" * 3000,
             b"x-request-id": b"\xff\xfe\x7f</script>" + b"x" * 100, b"host": b"evil.example", b"x-forwarded-proto": b"https"}
    return [
        {b"cookie": garbage, b"authorization": b"Bearer \xff\xfe", **noise},
        {b"cookie": caller.cookie_header() + b"; promo_csrf=\xe9\xe9; promo_staff_csrf=\xc3\xa9; promo_lang=\xff; "
                    b"promo_country=\x00", **noise},
        {b"authorization": b"Bearer " + b"A" * 5000, b"x-request-id": b"x" * 5000, b"content-type": b"multipart/form-data"},
        {b"authorization": b"Basic x", b"accept-language": b"\xff" * 100, b"content-type": b"application/x-www-form-urlencoded; charset=x"},
    ]


def content_lies(caller: Caller) -> list[tuple[str, bytes]]:
    token = (caller.csrf or "").encode()
    return [
        ("multipart/form-data", b"csrf=" + token),
        ("multipart/form-data; boundary=zzz", b"csrf=" + token + b"&email=a"),
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + token +
         b"\r\n--zzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\xff.csv\"\r\n\r\n\xff\x00\r\n--zzz--\r\n"),
        ("application/x-www-form-urlencoded", b"csrf=" + token + b"&\xff\xfe=%ZZ&&==&email=%C0%AF&next=%00"),
        ("application/x-www-form-urlencoded; charset=utf-16", b"csrf=" + token),
        ("application/json", b'{"action": [1], "code": {"x": null}, "csrf": "' + token + b'"}'),
        ("application/json", b"[1, 2"), ("application/toml", b"slug = [\xff"), ("text/csv", b"code\n\xff\xfe\x00\n"),
    ]


# Hypothesis: any route, any caller, any text in path, query and form.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)


@hypothesis_settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_any_text_anywhere_never_gives_a_500(walk: Walk, data: st.DataObject) -> None:
    app = walk.client.app
    route = data.draw(st.sampled_from(routes(app)))
    method = data.draw(st.sampled_from(methods(route)))
    caller = data.draw(st.sampled_from(callers_for(walk, route.path)))
    values = {name: data.draw(st.one_of(TEXT, st.integers().map(str), st.sampled_from(HOSTILE_IDS))) for name in params(route)}
    query = data.draw(st.dictionaries(st.sampled_from(QUERY_KEYS), TEXT, max_size=4))
    target = url(route, values) + ("?" + urlencode(query) if query else "")
    if method == "GET" or route.path.startswith(SIGN_OUTS):
        walk.send(caller, method, target)
    else:
        body = data.draw(st.dictionaries(st.sampled_from(FORM_FIELDS), TEXT, max_size=6))
        walk.send(caller, method, target, data={**body, "csrf": caller.csrf or ""})
    assert walk.failures == []


# ---- CSRF tokens are compared as bytes

def test_a_non_ascii_csrf_token_is_a_403_on_every_form(walk: Walk, capfd: pytest.CaptureFixture[str]) -> None:
    app = walk.client.app
    posts = [r for r in routes(app) if isinstance(r, Route) and "POST" in (r.methods or set()) and not r.path.startswith("/api/")]
    assert len(posts) >= 25
    for route in posts:
        for caller in callers_for(walk, route.path)[:-1]:  # the signed-in ones
            for token in ("tökén", "²", "\u202e", "é" * 43):
                response = walk.request(caller, "POST", url(route, {}), data={**form(caller, "x"), "csrf": token})
                assert response.status_code in (403, 404), (caller.name, route.path, token, response.status_code)
    for path, cookie in (("/signin", "promo_csrf"), ("/staff/signin", "promo_staff_csrf")):
        response = walk.request(walk.callers["anonymous"], "POST", path, data={"csrf": "tökén", "email": "ann@example.com"},
                                headers={b"cookie": f"{cookie}=t\xf6k\xe9n".encode("latin-1")})
        assert response.status_code == 403, path
    assert_whole(walk, capfd)


# ---- one strict id parser

@pytest.mark.parametrize("text", ["0", "1", "42", str(INT64_MAX)])
def test_ids_are_ascii_digits_within_sqlites_integers(text: str) -> None:
    assert parse_id(text, "before") == int(text)


# "" is an absent cursor (None) and "01" reads as id 1 in a query (test_paging); paths stay canonical (ID_PATTERN, below).
@pytest.mark.parametrize("text", ["-1", "+1", "1.0", "1e3", "0x10", "²", "٣", "１", "1_000", " 1", "1 ", "1\n",
                                  str(INT64_MAX + 1), "9" * 40, "\x00", "é"])
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    from promo.errors import InputError

    with pytest.raises(InputError) as info:
        parse_id(text, "before")
    assert info.value.errors[0].field == "before"


@given(number=st.integers(min_value=-(2 ** 70), max_value=2 ** 70))
def test_the_id_pattern_accepts_exactly_the_int64_range(number: int) -> None:
    from promo.errors import InputError
    from promo.views.ids import ID_PATTERN

    text = str(number)
    assert (re.fullmatch(ID_PATTERN, text) is not None) == (0 <= number <= INT64_MAX)
    try:
        assert parse_id(text, "id") == number
    except InputError:
        assert not 0 <= number <= INT64_MAX


def test_a_cursor_that_is_not_an_id_is_a_400_naming_it(walk: Walk) -> None:
    for value in ("²", "-1", str(2 ** 64)):
        page = walk.request(walk.callers["auditor"], "GET", f"/audit/?before={quote(value)}")
        assert page.status_code == 400 and "before" in page.text
    assert walk.request(walk.callers["auditor"], "GET", "/audit/?before=").status_code == 200  # empty: the first page


# ---- the 500 page

async def boom(request: Any) -> Any:
    raise RuntimeError("a bug: secret internals")


@pytest.mark.parametrize("path", ["/boom", "/api/v1/boom"])
def test_the_500_page_keeps_the_security_headers_and_the_request_id(web_settings: Settings, shop: sqlite3.Connection,
                                                                    path: str) -> None:
    app = create_app(web_settings)
    app.router.routes.append(Route(path, boom))  # a bug in a view: raised past every handler of the app
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(path, headers={"X-Request-ID": "trace-me-123"})
    assert response.status_code == 500
    for name, value in SECURITY_HEADERS:
        assert response.headers[name.decode()] == value.decode()
    assert response.headers["x-request-id"] == "trace-me-123"
    assert response.headers["cache-control"] == "no-store"
    assert "trace-me-123" in response.text  # the reference to quote to support
    assert "Traceback" not in response.text and "secret internals" not in response.text and "RuntimeError" not in response.text


def test_a_view_that_raises_answers_the_same_way(web_settings: Settings, shop: sqlite3.Connection,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from promo.views import consumer_account

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ZeroDivisionError("broken")

    monkeypatch.setattr(consumer_account, "local_path", broken)  # the sign-in page calls it
    with TestClient(create_app(web_settings), raise_server_exceptions=False) as client:
        response = client.get("/signin")
    assert response.status_code == 500 and re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert "Traceback" not in response.text


@pytest.mark.parametrize("name", ["Europe", "A" * 5000, "Europe/" + "x" * 300])
def test_a_time_zone_that_is_a_folder_or_too_long_is_a_field_error(name: str) -> None:
    from promo.errors import InputError
    from promo.timeutil import zone

    with pytest.raises(InputError) as info:  # ZoneInfo raised IsADirectoryError / OSError: a 500 from the campaign form
        zone(name)
    assert info.value.errors[0].field == "timezone"
