"""Charts of a campaign's figures (promo/dashboard.py), drawn by promo/charts.py: per day,
per hour, refusals by reason, and the stock burn-down with its projection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from markupsafe import Markup

from promo.charts import Bar, Line, bar_chart, hbar_chart, line_chart
from promo.dashboard import Dashboard


def _peak(points: Sequence[tuple[str, int]]) -> str:
    if not points or not any(n for _, n in points):
        return "none"
    label, n = max(points, key=lambda p: p[1])
    return f"most {n:,} ({label})"


def per_day_chart(per_day: Sequence[tuple[date, int]], zone: str, what: str = "Redemptions") -> Markup:
    points = [(d.isoformat(), n) for d, n in per_day]
    span = f"{points[0][0]} to {points[-1][0]}" if points else "no days yet"
    return bar_chart([Bar(d[5:], n, f"{d}: {n:,}") for d, n in points], title=f"{what} per day ({zone})",
                     summary=f"{span}: {sum(n for _, n in points):,} in total, {_peak(points)}.")


def per_hour_chart(hours: Sequence[tuple[datetime, dict[str, int]]], day: date, zone: str) -> Markup:
    points = [(h.strftime("%H:%M"), c["redeemed"]) for h, c in hours]
    return bar_chart([Bar(label[:2], n, f"{label}: {n:,}") for label, n in points],
                     title=f"Redemptions per hour on {day} ({zone})",
                     summary=f"{sum(n for _, n in points):,} redemptions on {day}, {_peak(points)}.")


def charts(board: Dashboard) -> dict[str, Markup]:
    zone = board.stored.campaign.timezone
    out = {"days": per_day_chart([(d, c["redeemed"]) for d, c in board.days], zone),
           "hours": per_hour_chart(board.hours, board.hours_day, zone)}
    if board.refusals:
        out["refusals"] = hbar_chart([Bar(r.rule, r.count, f"{r.rule} {r.description}: {r.count:,}") for r in board.refusals],
                                     title="Refusals by reason",
                                     summary="; ".join(f"{r.rule} {r.description}: {r.count:,}" for r in board.refusals) + ".")
    window = board.window_days
    if window:
        index = {d: i for i, d in enumerate(window)}
        actual = [(index[d], float(n)) for d, n in board.burn_down if d in index]
        lines = [Line(actual, "actual")]
        marks = []
        today = board.now.astimezone(board.tz).date()
        if today in index:
            marks.append((index[today], "today"))
            rate, left = board.run_out.rate_per_day, board.stock["available"]
            if board.run_out.on in index:  # down to none on the projected day
                end, end_left = index[board.run_out.on], 0.0
            else:  # what would be left when the window closes
                end = len(window) - 1
                end_left = max(left - rate * (end - index[today]), 0.0)
            lines.append(Line([(index[today], float(left)), (end, end_left)], "projected"))
        out["burn_down"] = line_chart([d.isoformat()[5:] for d in window], lines, marks=marks,
                                      title=f"Codes left per day ({zone})",
                                      summary=f"{board.stock['available']:,} codes available now; projected run-out: "
                                              f"{board.run_out.text}.")
    return out
