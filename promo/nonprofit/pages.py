"""What each nonprofit page needs, in one call (one hop to the database thread), so that the
views (promo/views/nonprofit.py, console_nonprofit.py) hold no connection and write no SQL.
Each function composes the package's modules; this one owns no table and has no SQL."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promo.campaigns.donation_program import DonationProgram
from promo.catalog import Sku, load_catalog
from promo.errors import FieldError, InputError, NotFound
from promo.jobs import ImportJob, recent_jobs
from promo.nonprofit.donations import (
    DonationRequest,
    DonationResult,
    get_request,
    key_stock,
    parse_quantities,
    request_donation,
    requests_of,
    requests_of_organisation,
    waiting_requests,
)
from promo.nonprofit.organisations import Organisation, get_organisation, organisations_by_status, organisations_of
from promo.nonprofit.program import PROGRAM, program
from promo.nonprofit.returns import pending_returns
from promo.nonprofit.validation_codes import ValidationCode, codes_held_by, codes_of_organisation, get_code


@dataclass(frozen=True)
class AccountHome:
    """The program's home page: the signed-in account's organisations, codes and requests."""

    program: DonationProgram
    organisations: list[Organisation]
    codes: list[ValidationCode]
    requests: list[DonationRequest]


def account_home(conn: sqlite3.Connection, account_email: str | None) -> AccountHome:
    """None: nobody is signed in, and the page shows the program alone."""
    _, prog = program(conn)
    if account_email is None:
        return AccountHome(prog, [], [], [])
    return AccountHome(prog, organisations_of(conn, account_email), codes_held_by(conn, account_email),
                       requests_of(conn, account_email))


@dataclass(frozen=True)
class HolderOrganisation:
    """An organisation's page, for its account holder only."""

    org: Organisation
    codes: list[ValidationCode]
    requests: list[DonationRequest]


def holder_organisation(conn: sqlite3.Connection, org_id: int, holder_email: str) -> HolderOrganisation:
    org = get_organisation(conn, org_id)
    if org.holder_email != holder_email:
        raise NotFound("organisation", str(org_id))  # not yours: as if it did not exist
    return HolderOrganisation(org, codes_of_organisation(conn, org_id), requests_of_organisation(conn, org_id))


def holder_organisation_of_code(conn: sqlite3.Connection, code_id: int, holder_email: str) -> HolderOrganisation:
    """The page of the organisation that issued validation code `code_id`."""
    return holder_organisation(conn, get_code(conn, code_id).organisation_id, holder_email)


@dataclass(frozen=True)
class DonationForm:
    program: DonationProgram
    catalog: dict[str, Sku]


def donation_form(conn: sqlite3.Connection) -> DonationForm:
    return DonationForm(program(conn)[1], load_catalog(conn))


def ask_from_form(conn: sqlite3.Connection, form: dict[str, str], *, account_email: str, now: datetime, locale: str,
                  ip: str | None) -> DonationResult:
    """The request form, every field that is wrong named at once (the terms R-N10, the
    quantities), then request_donation: refused by a rule, or stored."""
    _, prog = program(conn)
    accepted = form.get("accept_terms") == "yes"
    errors = [] if accepted else [FieldError("accept_terms", "the program's terms of use must be accepted", rule="R-N10")]
    try:
        quantities = parse_quantities(form, prog.products)
    except InputError as exc:
        errors += exc.errors
    if errors:
        raise InputError(errors)
    return request_donation(conn, account_email=account_email, code=form.get("code", ""), quantities=quantities, now=now,
                            locale=locale, terms_accepted=accepted, ip=ip)


def account_request(conn: sqlite3.Connection, request_id: int, account_email: str) -> DonationRequest:
    found = get_request(conn, request_id)
    if found.account_email != account_email:
        raise NotFound("donation request", str(request_id))  # not yours: as if it did not exist
    return found


@dataclass(frozen=True)
class ProgramOverview:
    """The console's working page: what waits for staff, and the program's keys."""

    pending: list[Organisation]
    approved: list[Organisation]
    under_review: list[Organisation]
    revoked: list[Organisation]
    waiting: list[DonationRequest]
    returns: list[dict[str, Any]]
    keys: list[dict[str, Any]]
    jobs: list[ImportJob]


def program_overview(conn: sqlite3.Connection) -> ProgramOverview:
    try:
        keys = key_stock(conn)
    except NotFound:  # the program is not installed (`promo demo` or `promo campaigns import`)
        keys = []
    return ProgramOverview(pending=organisations_by_status(conn, "pending"), approved=organisations_by_status(conn, "approved"),
                           under_review=organisations_by_status(conn, "under_review"),
                           revoked=organisations_by_status(conn, "revoked"), waiting=waiting_requests(conn),
                           returns=pending_returns(conn), keys=keys,
                           jobs=recent_jobs(conn, campaign_slug=PROGRAM, kind="codes", limit=5))
