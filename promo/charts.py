"""Charts drawn on the server as SVG, with no inline styles: the CSP allows no `style`
attribute (style-src 'self'), and every size and position here is an SVG attribute (x, y,
width, height, points), which it does not govern. Colours come from classes in promo.css.

Each chart is an image with a name and a description (<title>, <desc>, role="img"); the
figures themselves go in a data table beside it (the templates), so screen readers and
readers without CSS get the numbers, not a picture of them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24
MAX_LABELS = 8  # x-axis labels at most; every bar still has its own tooltip
_ids = itertools.count(1)


@dataclass(frozen=True)
class Bar:
    label: str  # on the axis, when there is room
    value: int
    tip: str = ""  # the tooltip; the label and value when empty


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def _num(n: float) -> str:
    """An SVG coordinate: short, and never in exponent notation."""
    return f"{n:.2f}".rstrip("0").rstrip(".")


def nice_ceiling(n: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least n (and at least 1)."""
    if n <= 1:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= n:
                return m * step
        step *= 10


def _frame(title: str, summary: str, css: str, body: str, *, width: int = WIDTH, height: int = HEIGHT) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg class="chart {css}" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-labelledby="chart-{n}-title chart-{n}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-{n}-title">{escape(title)}</title><desc id="chart-{n}-desc">{escape(summary)}</desc>'
        f"{body}</svg>")


def _y_axis(top_value: int, plot_height: float) -> str:
    baseline = TOP + plot_height
    return (f'<line class="axis" x1="{LEFT}" y1="{_num(baseline)}" x2="{WIDTH - RIGHT}" y2="{_num(baseline)}"/>'
            f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>'
            f'<text class="label" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{_fmt(top_value)}</text>'
            f'<text class="label" x="{LEFT - 4}" y="{_num(baseline)}" text-anchor="end">0</text>')


def _x_labels(labels: Sequence[str], x_of: Sequence[float]) -> str:
    if not labels:
        return ""
    every = max(1, -(-len(labels) // MAX_LABELS))  # ceil: at most MAX_LABELS labels
    shown = [i for i in range(len(labels)) if i % every == 0]
    return "".join(f'<text class="label" x="{_num(x_of[i])}" y="{HEIGHT - 6}" text-anchor="middle">{escape(labels[i])}</text>'
                   for i in shown)


def bar_chart(bars: Sequence[Bar], *, title: str, summary: str) -> Markup:
    """Vertical bars, one per bar, heights to scale; a bar of 0 has no height at all."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_value = nice_ceiling(max((b.value for b in bars), default=0))
    slot = plot_width / max(len(bars), 1)
    parts, centres = [_y_axis(top_value, plot_height)], []
    for i, bar in enumerate(bars):
        height = plot_height * bar.value / top_value
        x = LEFT + i * slot + slot * 0.1
        centres.append(LEFT + i * slot + slot / 2)
        tip = bar.tip or f"{bar.label}: {_fmt(bar.value)}"
        parts.append(f'<rect class="bar" x="{_num(x)}" y="{_num(TOP + plot_height - height)}" width="{_num(max(slot * 0.8, 1))}"'
                     f' height="{_num(height)}" data-value="{bar.value}"><title>{escape(tip)}</title></rect>')
    parts.append(_x_labels([b.label for b in bars], centres))
    return _frame(title, summary, "bars", "".join(parts))


def hbar_chart(bars: Sequence[Bar], *, title: str, summary: str) -> Markup:
    """Horizontal bars (a label each, e.g. a rule id, and the figure at the bar's end)."""
    row, label_width = 24, 110
    height = max(len(bars), 1) * row + 8
    top_value = max((b.value for b in bars), default=0) or 1
    plot_width = WIDTH - label_width - 70
    parts = []
    for i, bar in enumerate(bars):
        y = 4 + i * row
        width = plot_width * bar.value / top_value
        tip = bar.tip or f"{bar.label}: {_fmt(bar.value)}"
        parts.append(f'<text class="label" x="{label_width - 6}" y="{y + 15}" text-anchor="end">{escape(bar.label)}</text>'
                     f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{_num(width)}" height="{row - 8}"'
                     f' data-value="{bar.value}"><title>{escape(tip)}</title></rect>'
                     f'<text class="value" x="{_num(label_width + width + 6)}" y="{y + 15}">{_fmt(bar.value)}</text>')
    return _frame(title, summary, "hbars", "".join(parts), height=height)


@dataclass(frozen=True)
class Line:
    points: Sequence[tuple[int, float]]  # (slot index, value)
    css: str  # "actual" or "projected"


def line_chart(labels: Sequence[str], lines: Sequence[Line], *, title: str, summary: str,
               marks: Sequence[tuple[int, str]] = ()) -> Markup:
    """Lines over the slots named by `labels` (e.g. the days of a redemption window), with
    vertical marks (slot, text) such as "today"."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_value = nice_ceiling(int(max((v for line in lines for _, v in line.points), default=0)))
    step = plot_width / max(len(labels) - 1, 1)

    def x(slot: int) -> float:
        return LEFT + slot * step

    def y(value: float) -> float:
        return TOP + plot_height - plot_height * max(value, 0) / top_value

    parts = [_y_axis(top_value, plot_height)]
    for slot, text in marks:
        parts.append(f'<line class="mark" x1="{_num(x(slot))}" y1="{TOP}" x2="{_num(x(slot))}" y2="{_num(TOP + plot_height)}"/>'
                     f'<text class="label" x="{_num(x(slot) + 3)}" y="{TOP + 12}">{escape(text)}</text>')
    for line in lines:
        if not line.points:
            continue
        points = " ".join(f"{_num(x(s))},{_num(y(v))}" for s, v in line.points)
        dash = ' stroke-dasharray="6 4"' if line.css == "projected" else ""
        parts.append(f'<polyline class="line {line.css}" fill="none"{dash} points="{points}"/>')
    parts.append(_x_labels(labels, [x(i) for i in range(len(labels))]))
    return _frame(title, summary, "lines", "".join(parts))


def sparkline(values: Sequence[int], *, label: str) -> Markup:
    """A small bar chart for a table cell; `label` names it and gives its figures."""
    width, height = 112, 24
    top_value = max(values, default=0) or 1
    slot = width / max(len(values), 1)
    rects = "".join(f'<rect class="bar" x="{_num(i * slot + slot * 0.1)}" y="{_num(height - height * v / top_value)}"'
                    f' width="{_num(slot * 0.8)}" height="{_num(height * v / top_value)}"/>' for i, v in enumerate(values))
    return Markup(f'<svg class="chart spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"'
                  f' aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">{rects}</svg>')
