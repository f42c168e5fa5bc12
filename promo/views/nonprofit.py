"""Nonprofit program pages (en/da/nb): register an organisation, issue and refresh
validation codes (the account holder), request donations with a code (a representative)
under the program's terms of use (R-N10, R-N11), follow a request (waiting, held, refused
with the reason, or granted with its licence keys), and ask for a return. Dates are shown
in the organisation's zone."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.campaigns.donation_program import HEALTH_EXCEPTIONS, INELIGIBLE_TYPES, MISSIONS, ORG_TYPES
from promo.campaigns.rules import Failure
from promo.countries import country_codes
from promo.errors import InputError
from promo.i18n import N_
from promo.nonprofit.organisations import parse_registration, register_organisation
from promo.nonprofit.pages import (
    account_home,
    account_request,
    ask_from_form,
    donation_form,
    holder_organisation,
    holder_organisation_of_code,
)
from promo.nonprofit.program import NotAllowed, program
from promo.nonprofit.returns import ask_return
from promo.nonprofit.validation_codes import issue_code, refresh_code
from promo.timeutil import utcnow
from promo.views.context import PageContext, client_ip, page_context, redirect, render
from promo.views.guards import signed_in_form, signed_in_page
from promo.views.refusals import Explained, in_words

LABELS = {
    "relieving_poverty": N_("Relieving poverty"), "advancing_education": N_("Advancing education"),
    "social_welfare": N_("Improving social welfare"), "preserving_culture": N_("Preserving culture"),
    "environment": N_("Preserving or restoring the environment"), "human_rights": N_("Promoting human rights"),
    "civil_society": N_("Establishing civil society"), "other_mission": N_("Something else"),
    "charity": N_("Charity"), "association": N_("Voluntary association"), "foundation": N_("Foundation"),
    "community_group": N_("Community group"), "faith_based": N_("Faith-based organisation"),
    "healthcare": N_("Health-care organisation"), "government": N_("Government body"),
    "educational_institution": N_("School, college or university"), "library": N_("Library"),
    "trade_association": N_("Professional trade association"), "sports": N_("Professional or semi-professional sports club"),
    "political": N_("Political organisation"), "labour": N_("Labour union"), "fraternal": N_("Fraternal organisation"),
    "refurbisher": N_("Computer refurbisher"),
    "community_clinic": N_("Community clinic"), "behavioural_health_clinic": N_("Behavioural health clinic"),
    "womens_health_clinic": N_("Women's health clinic"), "hospice": N_("Hospice"), "emergency_services": N_("Emergency services"),
    "blood_tissue_organ_bank": N_("Blood, tissue or organ bank"), "other": N_("Other health care (hospital, practice, …)"),
    "pending": N_("Waiting for review"), "approved": N_("Approved"), "rejected": N_("Not approved"),
    "under_review": N_("Under review"), "revoked": N_("Approval revoked"),
}
# A donation request's state, as the requester reads it (R-N4).
REQUEST_STATES = {"requested": N_("Waiting for a decision"), "held": N_("On hold"), "granted": N_("Granted"),
                  "refused": N_("Not granted")}
# Why a request is held when no one wrote a reason: the program put it on hold.
HOLD_CAUSES = {
    "review": N_("Your organisation's registration is being reviewed again. The request waits until the review ends; "
                 "it keeps its place in your allocation."),
    "stock": N_("Licence keys for a product of this request have run out. The request waits until new keys arrive."),
}
REASONS = {
    "mission_not_eligible": N_("The mission is not one of the program's missions serving the local community."),
    "organisation_type_not_eligible": N_("Organisations of this type are not eligible for the program."),
    "healthcare_not_eligible": N_("Health-care organisations are eligible only as independent nonprofit clinics, hospices, "
                                  "emergency services, or blood, tissue or organ banks."),
    "no_non_discrimination_declaration": N_("The organisation must declare that it has no discriminatory policy."),
    "program_not_open": N_("Donation requests are not open yet."),
    "code_unknown": N_("There is no such validation code. Check it with your organisation."),
    "code_expired": N_("This validation code has expired. Ask your organisation to refresh it."),
    "code_replaced": N_("This validation code was replaced by a newer one. Ask your organisation for it."),
    "not_the_representative": N_("This validation code was issued to someone else. Sign in with the address it was sent to."),
    "organisation_not_approved": N_("The organisation is not approved."),
    "allocation_exceeded": N_("You asked for %(requested)s of %(what)s, but only %(remaining)s of %(limit)s are left in "
                              "this two-year period."),
    "no_keys_left": N_("No licence keys are left for %(sku)s at the moment. Please try again later."),
    "not_the_holder": N_("Only the organisation's account holder can do this."),
    "codes_need_approval": N_("Validation codes can be created once the organisation is approved."),
    "organisation_revoked": N_("The organisation's approval was revoked: it can no longer request donations, and its "
                               "validation codes no longer work."),
    "return_too_late": N_("A return must be asked for less than 60 days after the products were received."),
    "return_installed": N_("Products that were installed cannot be returned."),
}
FIELD_MESSAGES = {
    "name": N_("Enter the organisation's name."),
    "short_name": N_("Enter a short name of 2 to 30 letters or digits, without spaces."),
    "registration_number": N_("Enter the organisation's registration number."),
    "country": N_("Choose the country where the organisation is registered."),
    "org_type": N_("Choose the kind of organisation."),
    "health_kind": N_("Choose the kind of health-care organisation."),
    "mission": N_("Choose the organisation's mission."),
    "first_name": N_("Enter the first name."), "last_name": N_("Enter the last name."),
    "email": N_("Enter an email address, such as name@example.org."),
    "products": N_("Choose at least one product and how many."),
    "accept_terms": N_("Accept the program's terms of use to send the request."),
}

GROUPS = {"Windows Server Standard": N_("Windows Server Standard"), "other server products": N_("other server products, in total")}


def group_label(label: str, ctx: PageContext) -> str:
    """Limits named after a group of products are translated; a product keeps its catalog name."""
    return ctx.l10n.gettext(GROUPS[label]) if label in GROUPS else label


def explain(failures: list[Failure] | tuple[Failure, ...], ctx: PageContext) -> list[Explained]:
    out = []
    for f in failures:
        params = dict(f.params)
        if "what" in params:
            params["what"] = group_label(str(params["what"]), ctx)
        out.append(in_words(f, REASONS, ctx.l10n, params))
    return out


def _field_errors(exc: InputError, ctx: PageContext) -> dict[str, str]:
    return {e.field: ctx.l10n.gettext(FIELD_MESSAGES[e.field]) if e.field in FIELD_MESSAGES else e.message
            for e in exc.errors}


def _refused(exc: NotAllowed, ctx: PageContext) -> str:
    """A refusal by rule, in the reader's language, each with its rule id."""
    return " ".join(f"{e.text} ({e.rule})" for e in explain(exc.failures, ctx))


def _db(request: Request) -> Any:
    return request.app.state.db


async def home(request: Request) -> Response:
    ctx = await page_context(request)
    page = await _db(request).read(account_home, ctx.session.account_email if ctx.session else None)
    return render(request, ctx, "nonprofit/home.html", now=utcnow(), labels=LABELS, states=REQUEST_STATES,
                  program=page.program, organisations=page.organisations, codes=page.codes, requests=page.requests)


def _registration_page(request: Request, ctx: PageContext, status: int = 200, values: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None) -> Response:
    return render(request, ctx, "nonprofit/register.html", status, values=values or {}, errors=errors or {},
                  missions=MISSIONS, org_types=ORG_TYPES, ineligible=INELIGIBLE_TYPES, health_kinds=HEALTH_EXCEPTIONS + ("other",),
                  labels=LABELS, countries=sorted(country_codes(), key=ctx.l10n.country))


@signed_in_page
async def register_form(request: Request, ctx: PageContext) -> Response:
    return _registration_page(request, ctx, values={"country": ctx.country or ""})


@signed_in_form
async def register_submit(request: Request, ctx: PageContext, form: Any) -> Response:
    assert ctx.session is not None
    values = {k: str(form.get(k) or "") for k in ("name", "short_name", "country", "registration_number", "mission",
                                                   "org_type", "health_kind", "non_discrimination")}
    try:
        registration = parse_registration(values)
        org_id = await _db(request).write(register_organisation, holder_email=ctx.session.account_email,
                                          registration=registration, now=utcnow(), ip=client_ip(request))
    except InputError as exc:
        return _registration_page(request, ctx, 422, values, _field_errors(exc, ctx))
    return redirect(f"/nonprofit/organisations/{org_id}")


async def _organisation_page(request: Request, ctx: PageContext, key: int, status: int = 200, *, by_code: bool = False,
                             values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                             new_code: str | None = None) -> Response:
    """The organisation `key` names, or (by_code) the one whose validation code `key` is."""
    assert ctx.session is not None
    load = holder_organisation_of_code if by_code else holder_organisation
    page = await _db(request).read(load, key, ctx.session.account_email)
    return render(request, ctx, "nonprofit/organisation.html", status, org=page.org, codes=page.codes,
                  requests=page.requests, now=utcnow(), labels=LABELS, states=REQUEST_STATES, causes=HOLD_CAUSES,
                  values=values or {}, errors=errors or {}, new_code=new_code)


@signed_in_page
async def organisation_page(request: Request, ctx: PageContext) -> Response:
    return await _organisation_page(request, ctx, request.path_params["org_id"])


@signed_in_form
async def issue_submit(request: Request, ctx: PageContext, form: Any) -> Response:
    assert ctx.session is not None
    values = {k: str(form.get(k) or "") for k in ("first_name", "last_name", "email")}
    org_id = request.path_params["org_id"]
    try:
        code = await _db(request).write(issue_code, org_id, holder_email=ctx.session.account_email,
                                        now=utcnow(), ip=client_ip(request), **values)
    except NotAllowed as exc:
        return await _organisation_page(request, ctx, org_id, 403, values=values, errors={"rule": _refused(exc, ctx)})
    except InputError as exc:
        return await _organisation_page(request, ctx, org_id, 422, values=values, errors=_field_errors(exc, ctx))
    return await _organisation_page(request, ctx, org_id, 201, new_code=code)


@signed_in_form
async def refresh_submit(request: Request, ctx: PageContext, _form: Any) -> Response:
    assert ctx.session is not None
    code_id = request.path_params["code_id"]
    try:
        code = await _db(request).write(refresh_code, code_id, holder_email=ctx.session.account_email, now=utcnow(),
                                        ip=client_ip(request))
    except NotAllowed as exc:
        return await _organisation_page(request, ctx, code_id, 403, by_code=True, errors={"rule": _refused(exc, ctx)})
    return await _organisation_page(request, ctx, code_id, 201, by_code=True, new_code=code)


async def terms(request: Request) -> Response:
    """R-N10/R-N11: the program's terms of use, which every donation request accepts."""
    ctx = await page_context(request)
    _, prog = await _db(request).read(program)
    return render(request, ctx, "nonprofit/terms.html", program=prog)


async def _request_page(request: Request, ctx: PageContext, status: int = 200, *, values: dict[str, str] | None = None,
                        errors: dict[str, str] | None = None, refusals: list[Explained] | None = None,
                        allowances: list[Any] | None = None) -> Response:
    form = await _db(request).read(donation_form)
    return render(request, ctx, "nonprofit/request.html", status, program=form.program, catalog=form.catalog,
                  values=values or {}, label=lambda text: group_label(text, ctx),
                  errors=errors or {}, refusals=refusals or [], allowances=allowances or [])


@signed_in_page
async def request_form(request: Request, ctx: PageContext) -> Response:
    return await _request_page(request, ctx, values={"code": request.query_params.get("code", "")})


@signed_in_form
async def request_submit(request: Request, ctx: PageContext, form: Any) -> Response:
    assert ctx.session is not None
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    try:
        result = await _db(request).write(ask_from_form, values, account_email=ctx.session.account_email, now=utcnow(),
                                          locale=ctx.lang, ip=client_ip(request))
    except InputError as exc:
        return await _request_page(request, ctx, 422, values=values, errors=_field_errors(exc, ctx))
    if result.request_id is None:
        return await _request_page(request, ctx, 422, values=values, refusals=explain(result.decision.failures, ctx),
                                   allowances=result.allowances)
    request.app.state.wake_relay()
    return redirect(f"/nonprofit/requests/{result.request_id}")


async def _donation_page(request: Request, ctx: PageContext, status: int = 200, error: str | None = None) -> Response:
    assert ctx.session is not None
    found = await _db(request).read(account_request, request.path_params["request_id"], ctx.session.account_email)
    return render(request, ctx, "nonprofit/donation.html", status, donation=found, error=error, states=REQUEST_STATES,
                  causes=HOLD_CAUSES)


@signed_in_page
async def donation_page(request: Request, ctx: PageContext) -> Response:
    return await _donation_page(request, ctx)


@signed_in_form
async def return_submit(request: Request, ctx: PageContext, form: Any) -> Response:
    assert ctx.session is not None
    request_id = request.path_params["request_id"]
    try:
        await _db(request).write(ask_return, request_id, account_email=ctx.session.account_email,
                                 not_installed=form.get("not_installed") == "yes", now=utcnow(), ip=client_ip(request))
    except NotAllowed as exc:
        return await _donation_page(request, ctx, 403, error=_refused(exc, ctx))
    except InputError as exc:
        return await _donation_page(request, ctx, 409, error=str(exc.errors[0].message))
    return redirect(f"/nonprofit/requests/{request_id}")

routes = [
    Route("/nonprofit/", home, name="nonprofit.home"),
    Route("/nonprofit/register", register_form, methods=["GET"], name="nonprofit.register_form"),
    Route("/nonprofit/register", register_submit, methods=["POST"], name="nonprofit.register"),
    Route("/nonprofit/organisations/{org_id:int64}", organisation_page, name="nonprofit.organisation"),
    Route("/nonprofit/organisations/{org_id:int64}/codes", issue_submit, methods=["POST"], name="nonprofit.issue_code"),
    Route("/nonprofit/codes/{code_id:int64}/refresh", refresh_submit, methods=["POST"], name="nonprofit.refresh_code"),
    Route("/nonprofit/terms", terms, methods=["GET"], name="nonprofit.terms"),
    Route("/nonprofit/request", request_form, methods=["GET"], name="nonprofit.request_form"),
    Route("/nonprofit/request", request_submit, methods=["POST"], name="nonprofit.request"),
    Route("/nonprofit/requests/{request_id:int64}", donation_page, name="nonprofit.donation"),
    Route("/nonprofit/requests/{request_id:int64}/return", return_submit, methods=["POST"], name="nonprofit.return"),
]
