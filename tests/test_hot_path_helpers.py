"""Helpers rewritten for speed on the redemption's path keep their exact old behaviour:
each is checked against the straightforward version it replaced, over arbitrary input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse

from promo.errors import InputError
from promo.i18n import _CACHED_HEADER_LENGTH, _parse_accept, _parse_accept_cached, _parse_accept_text, languages, negotiate, region_of
from promo.identifiers import mask_code
from promo.timeutil import db_time, from_db_time
from promo.views.context import SeeOther, read_form


def reference_mask(code: str) -> str:
    out, seen = [], 0
    for ch in reversed(code):
        if ch.isalnum():
            seen += 1
            out.append(ch if seen <= 4 else "*")
        else:
            out.append(ch)
    return "".join(reversed(out))


@given(st.text(max_size=60))
def test_mask_code_keeps_separators_and_the_last_four_letters_or_digits(code: str) -> None:
    assert mask_code(code) == reference_mask(code)


def test_mask_code_on_a_reward_code() -> None:
    assert mask_code("XB000-00000-00000-00001-23456") == "*****-*****-*****-*****-*3456"
    assert mask_code("ABCDE-FGHIJ-KLMNO") == "*****-*****-*LMNO"
    assert mask_code("AB_C") == "AB_C"  # fewer than four letters or digits: nothing to hide
    assert mask_code("ÆØÅ12345") == "****2345"


aware = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-11, minutes=-30))]))


@given(aware)
def test_db_time_is_the_fixed_width_utc_text_it_always_was(moment: datetime) -> None:
    text = db_time(moment)
    assert text == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert from_db_time(text) == moment and from_db_time(text).tzinfo is UTC


def test_db_time_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        db_time(datetime(2013, 9, 1, 12))


@pytest.mark.parametrize("text", ["2013-09-01T12:00:00", "2013-09-01T12:00:00.000000+00:00", "2013-09-01", ""])
def test_from_db_time_reads_only_what_db_time_writes(text: str) -> None:
    with pytest.raises(ValueError, match="not a stored time"):
        from_db_time(text)


def _request(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> Request:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", content_type.encode())]}
    return Request(scope, receive)


async def _starlette_form(request: Request) -> FormData:
    return await request.form()


form_text = st.text(alphabet=st.characters(codec="latin-1"), max_size=80)


@given(st.one_of(form_text, st.lists(st.tuples(form_text, form_text), max_size=6).map(
    lambda pairs: "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs))))
def test_read_form_reads_urlencoded_bodies_exactly_as_starlette_does(body: str) -> None:
    raw = body.encode("latin-1")
    theirs = asyncio.run(_starlette_form(_request(raw)))
    holding_nul = [name for name, value in theirs.multi_items() if "\x00" in name + str(value)]
    if holding_nul:  # refused, naming those fields (errors.refuse_nul), where Starlette would read them
        with pytest.raises(InputError) as refused:
            asyncio.run(read_form(_request(raw)))
        assert [e.field for e in refused.value.errors] == list(dict.fromkeys(n.replace("\x00", "\\0") for n in holding_nul))
        return
    ours = asyncio.run(read_form(_request(raw)))
    assert ours.multi_items() == theirs.multi_items()
    for name in {name for name, _ in theirs.multi_items()} | {"absent"}:
        assert ours.get(name) == theirs.get(name) and ours.get(name, "x") == theirs.get(name, "x")


def test_read_form_refuses_a_flood_of_fields_with_a_400() -> None:
    with pytest.raises(HTTPException) as refused:
        asyncio.run(read_form(_request(b"&".join(b"f%d=1" % i for i in range(1001)))))
    assert refused.value.status_code == 400 and "1000" in refused.value.detail


@given(st.text(max_size=60).map(lambda tail: "/" + tail))
def test_see_other_answers_exactly_as_starlettes_redirect_does(url: str) -> None:
    ours, theirs = SeeOther(url), RedirectResponse(url, status_code=303)
    assert (ours.status_code, ours.raw_headers, ours.body, ours.background) == \
        (theirs.status_code, theirs.raw_headers, theirs.body, theirs.background)
    ours.headers["Retry-After"] = "5"  # what views add to a response still works on it
    assert (b"retry-after", b"5") in ours.raw_headers


@given(st.one_of(st.text(max_size=300), st.sampled_from(["da-DK,da;q=0.9,en;q=0.8", "nb-NO", "en-GB;q=0", "*", ""])))
def test_the_cached_accept_language_parse_is_the_parse(header: str) -> None:
    """The cache changes nothing but the cost: a short header is parsed once and then served
    from the cache (the very same result), a long one is parsed each time and never kept."""
    before = _parse_accept_cached.cache_info()
    first = _parse_accept(header)
    assert first == _parse_accept(header) == _parse_accept_text(header)
    if header and len(header) <= _CACHED_HEADER_LENGTH:
        assert _parse_accept(header) is first
        assert _parse_accept_cached.cache_info().hits >= before.hits + 2
    else:
        assert _parse_accept_cached.cache_info().currsize == before.currsize
    # What the pages read through the cache is what the header says (the parse's first tag).
    language, region = negotiate(None, header), region_of(header)
    assert language in languages()
    if not first:
        assert (language, region) == ("en", None)
