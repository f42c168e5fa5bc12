"""Dashboards in the console: one per campaign (/console/campaigns/{slug}/dashboard) and the
overview of live campaigns (/console/dashboard). The figures come from promo/dashboard.py;
promo/views/dashboard_charts.py draws them; this module serves the pages."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.campaigns.purchase_offer import PurchaseOffer
from promo.charts import sparkline
from promo.dashboard import dashboard_of, overview
from promo.errors import InputError
from promo.staff import POLICY, StaffSession
from promo.timeutil import utcnow
from promo.views.dashboard_charts import charts
from promo.views.staffauth import require_role, staff_gettext, staff_render


def _day(request: Request) -> date | None:
    raw = request.query_params.get("day", "")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InputError.one("day", "must be a date like 2026-05-01") from None


@require_role(*POLICY.read_campaigns)
async def campaign_page(request: Request, session: StaffSession) -> Response:
    slug, day, now = str(request.path_params["slug"]), _day(request), utcnow()
    board = await request.app.state.db.read(dashboard_of, slug, kind=PurchaseOffer, now=now, day=day)
    return staff_render(request, "console/dashboard.html", session=session, board=board, c=board.stored.campaign,
                        charts=charts(board, staff_gettext(request)))


@require_role(*POLICY.read_campaigns)
async def overview_page(request: Request, session: StaffSession) -> Response:
    now = utcnow()
    glances = await request.app.state.db.read(overview, now)
    sparks = {g.stored.id: sparkline([n for _, n in g.last_days], label=(
        f"Redemptions per day, last {len(g.last_days)} days ({g.stored.campaign.timezone}): "
        + ", ".join(f"{d.isoformat()[5:]} {n:,}" for d, n in g.last_days))) for g in glances}
    return staff_render(request, "console/overview.html", session=session, glances=glances, sparks=sparks, now=now)


routes = [
    Route("/console/dashboard", overview_page, name="console.overview"),
    Route("/console/campaigns/{slug}/dashboard", campaign_page, name="console.dashboard"),
]
