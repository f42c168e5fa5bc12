"""Server-drawn SVG charts: well-formed, accessible (role, title, description), sized by
attributes only (the CSP allows no style attribute), to scale, and escaping what they show."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promo.charts import Bar, Line, bar_chart, hbar_chart, line_chart, nice_ceiling, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    assert "style" not in re.sub(r"<(title|desc)[^>]*>.*?</\1>", "", str(markup)), "a style attribute or element"
    return ET.fromstring(str(markup))


def rects(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_bars_are_to_scale_and_a_zero_day_has_no_bar() -> None:
    svg = parse(bar_chart([Bar("05-01", 0), Bar("05-02", 5), Bar("05-03", 10)], title="Redemptions per day",
                          summary="3 days, 15 in total"))
    heights = [float(r.get("height", "")) for r in rects(svg)]
    assert heights[0] == 0 and heights[2] == pytest.approx(2 * heights[1]) and heights[2] > 100
    widths = {r.get("width") for r in rects(svg)}
    assert len(widths) == 1  # every bar as wide as the others: no bar is drawn full width
    assert svg.get("role") == "img"
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert title is not None and title.text == "Redemptions per day" and desc is not None and desc.text == "3 days, 15 in total"
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert [r.findtext(f"{SVG}title") for r in rects(svg)] == ["05-01: 0", "05-02: 5", "05-03: 10"]


def test_two_charts_on_a_page_have_their_own_ids() -> None:
    one, two = parse(bar_chart([], title="a", summary="b")), parse(bar_chart([], title="a", summary="b"))
    assert one.get("aria-labelledby") != two.get("aria-labelledby")


@given(st.lists(st.integers(0, 10**7), max_size=120))
def test_any_figures_draw_inside_the_frame(values: list[int]) -> None:
    svg = parse(bar_chart([Bar(str(i), v) for i, v in enumerate(values)], title="t", summary="s"))
    top = nice_ceiling(max(values, default=0))
    for rect, value in zip(rects(svg), values, strict=True):
        y, height = float(rect.get("y", "")), float(rect.get("height", ""))
        assert 0 <= y and y + height <= 200.01 and height >= 0
        assert height == pytest.approx(166 * value / top, abs=0.01)
    labels = [t for t in svg.iter(f"{SVG}text") if t.get("y") == "194"]
    assert len(labels) <= 8  # the x axis stays legible; every bar keeps its tooltip


def test_labels_and_titles_are_escaped() -> None:
    markup = str(hbar_chart([Bar("<script>", 3, tip='"><b>x')], title="a & b <c>", summary="<desc>"))
    assert "<script>" not in markup and "<b>" not in markup and "<c>" not in markup and "<desc>" not in markup
    svg = parse(markup)
    assert svg.findtext(f"{SVG}title") == "a & b <c>" and [t.text for t in svg.iter(f"{SVG}text")][0] == "<script>"


def test_horizontal_bars_are_to_scale() -> None:
    svg = parse(hbar_chart([Bar("R-X2", 4), Bar("R-X4", 1)], title="Refusals by reason", summary="s"))
    first, second = (float(r.get("width", "")) for r in rects(svg))
    assert first == pytest.approx(4 * second)


def test_a_line_chart_draws_its_lines_and_marks() -> None:
    svg = parse(line_chart(["03-20", "03-21", "03-22"], [Line([(0, 10), (1, 5)], "actual"), Line([(1, 5), (2, 0)], "projected")],
                           title="Codes left", summary="s", marks=[(1, "today")]))
    lines = list(svg.iter(f"{SVG}polyline"))
    assert [line.get("class") for line in lines] == ["line actual", "line projected"]
    assert lines[1].get("stroke-dasharray") and not lines[0].get("stroke-dasharray")
    assert lines[0].get("points") == "44,10 338,93"  # 10 at the top of the scale, 5 half way down
    assert "today" in [t.text for t in svg.iter(f"{SVG}text")]


def test_a_sparkline_is_named_by_its_figures() -> None:
    svg = parse(sparkline([0, 2, 1], label="Redemptions per day: 05-01 0, 05-02 2, 05-03 1"))
    assert svg.get("role") == "img" and svg.get("aria-label", "").endswith("05-03 1")
    assert [float(r.get("height", "")) for r in svg.iter(f"{SVG}rect")] == [0, 24, 12]


@pytest.mark.parametrize(("n", "top"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (4_999, 5_000), (5_001, 10_000)])
def test_the_scale_ends_at_a_round_number(n: int, top: int) -> None:
    assert nice_ceiling(n) == top
