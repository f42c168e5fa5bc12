"""Charts of a campaign's figures (promo/dashboard.py), drawn by promo/charts.py: per day,
per hour, refusals by reason, and the stock burn-down with its projection. Their titles and
summaries (what a screen reader reads) are in the reader's language (`gettext`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime

from markupsafe import Markup

from promo.charts import Bar, Line, bar_chart, hbar_chart, line_chart
from promo.dashboard import Dashboard
from promo.i18n import N_

Gettext = Callable[[str], str]


def _english(message: str) -> str:
    return message


def _peak(points: Sequence[tuple[str, int]], _: Gettext) -> str:
    if not points or not any(n for _label, n in points):
        return _(N_("none"))
    label, n = max(points, key=lambda p: p[1])
    return _(N_("most %(n)s (%(when)s)")) % {"n": f"{n:,}", "when": label}


def per_day_chart(per_day: Sequence[tuple[date, int]], zone: str, _: Gettext = _english) -> Markup:
    points = [(d.isoformat(), n) for d, n in per_day]
    span = _(N_("%(first)s to %(last)s")) % {"first": points[0][0], "last": points[-1][0]} if points else _(N_("no days yet"))
    return bar_chart([Bar(d[5:], n, f"{d}: {n:,}") for d, n in points], title=_(N_("Redemptions per day (%(zone)s)")) % {"zone": zone},
                     summary=_(N_("%(span)s: %(total)s in total, %(peak)s."))
                     % {"span": span, "total": f"{sum(n for _d, n in points):,}", "peak": _peak(points, _)})


def per_hour_chart(hours: Sequence[tuple[datetime, dict[str, int]]], day: date, zone: str, _: Gettext = _english) -> Markup:
    points = [(h.strftime("%H:%M"), c["redeemed"]) for h, c in hours]
    return bar_chart([Bar(label[:2], n, f"{label}: {n:,}") for label, n in points],
                     title=_(N_("Redemptions per hour on %(day)s (%(zone)s)")) % {"day": day, "zone": zone},
                     summary=_(N_("%(total)s redemptions on %(day)s, %(peak)s."))
                     % {"total": f"{sum(n for _h, n in points):,}", "day": day, "peak": _peak(points, _)})


def charts(board: Dashboard, _: Gettext = _english) -> dict[str, Markup]:
    zone = board.stored.campaign.timezone
    out = {"days": per_day_chart([(d, c["redeemed"]) for d, c in board.days], zone, _),
           "hours": per_hour_chart(board.hours, board.hours_day, zone, _)}
    if board.refusals:
        out["refusals"] = hbar_chart([Bar(r.rule, r.count, f"{r.rule} {r.description}: {r.count:,}") for r in board.refusals],
                                     title=_(N_("Refusals by reason")),
                                     summary="; ".join(f"{r.rule} {r.description}: {r.count:,}" for r in board.refusals) + ".")
    window = board.window_days
    if window:
        index = {d: i for i, d in enumerate(window)}
        actual = [(index[d], float(n)) for d, n in board.burn_down if d in index]
        lines = [Line(actual, "actual")]
        marks = []
        today = board.now.astimezone(board.tz).date()
        if today in index:
            marks.append((index[today], _(N_("today"))))
            rate, left = board.run_out.rate_per_day, board.stock["available"]
            if board.run_out.on in index:  # down to none on the projected day
                end, end_left = index[board.run_out.on], 0.0
            else:  # what would be left when the window closes
                end = len(window) - 1
                end_left = max(left - rate * (end - index[today]), 0.0)
            lines.append(Line([(index[today], float(left)), (end, end_left)], "projected"))
        out["burn_down"] = line_chart([d.isoformat()[5:] for d in window], lines, marks=marks,
                                      title=_(N_("Codes left per day (%(zone)s)")) % {"zone": zone},
                                      summary=_(N_("%(n)s codes available now; projected run-out: %(when)s."))
                                      % {"n": f"{board.stock['available']:,}", "when": _(board.run_out.text)})
    return out
