"""Console lists of the nonprofit program's records that grow without end: every
organisation and every donation request, searchable and paged (issue 19, item 8). The
program's working page (decisions, returns, keys) stays views/console_nonprofit.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.errors import InputError
from promo.nonprofit.donations import requests_page
from promo.nonprofit.organisations import ORG_STATUSES, organisations_page
from promo.nonprofit.records import RecordQuery
from promo.paging import Keyset, Page
from promo.staff import POLICY, StaffSession
from promo.views.nonprofit import LABELS
from promo.views.staffauth import require_role, staff_render


async def _list(request: Request, session: StaffSession, template: str, load: object,
                statuses: tuple[str, ...] = ()) -> Response:
    query = dict(request.query_params)
    try:
        wanted = RecordQuery.from_query(query, statuses)
        keyset = Keyset.from_query(request.query_params)
    except InputError as exc:
        return staff_render(request, template, 400, session=session, query=RecordQuery(), page=Page([]), labels=LABELS,
                            statuses=statuses, errors={e.field: e.message for e in exc.errors})
    page = await request.app.state.db.read(load, wanted, keyset)
    return staff_render(request, template, session=session, query=wanted, page=page, labels=LABELS, statuses=statuses,
                        errors={})


@require_role(*POLICY.read_campaigns)
async def organisations(request: Request, session: StaffSession) -> Response:
    return await _list(request, session, "console/organisations.html", organisations_page, ORG_STATUSES)


@require_role(*POLICY.read_campaigns)
async def donation_requests(request: Request, session: StaffSession) -> Response:
    return await _list(request, session, "console/requests.html", requests_page)


routes = [
    Route("/console/nonprofit/organisations", organisations, methods=["GET"], name="console.organisations"),
    Route("/console/nonprofit/requests", donation_requests, methods=["GET"], name="console.requests"),
]
