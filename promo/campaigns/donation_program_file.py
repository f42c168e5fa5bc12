"""Reading and writing a donation program's campaign file: every field checked, every error
collected with its field and rule before giving up. The program's rules are in donation_program.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from promo.catalog import Sku
from promo.errors import FieldError, InputError
from promo.timeutil import zone

if TYPE_CHECKING:  # for annotations only: donation_program.py imports this module
    from promo.campaigns.donation_program import DonationProgram, Limits

GRANT_MODES = ("at_once", "by_staff")  # R-N4: the sponsor may grant or refuse any request; by_staff: every request waits


def read_program(program: type[DonationProgram], limits_type: type[Limits], data: Mapping[str, Any],
                 catalog: Mapping[str, Sku]) -> DonationProgram:
    """The program a campaign file describes, built with `program` (its R-N2 limits with `limits_type`);
    an InputError lists every bad field."""
    errors: list[FieldError] = []

    def fail(where: str, message: str) -> None:
        errors.append(FieldError(where, message))

    slug, name, tz = (str(data.get(k) or "").strip() for k in ("slug", "name", "timezone"))
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug):
        fail("slug", "must be lower-case letters, digits and single dashes")
    if not name:
        fail("name", "is required")
    try:
        zone(tz)
    except InputError as exc:
        errors.extend(exc.errors)
    start = data.get("program_start")
    if isinstance(start, str):
        try:
            start = date.fromisoformat(start)
        except ValueError:
            start = None
    if not isinstance(start, date) or isinstance(start, datetime):
        fail("program_start", "must be a date such as 2011-07-27 (R-N1)")
        start = date.min
    products = data.get("products")
    if not isinstance(products, list) or not products:
        fail("products", "must list the donation SKUs offered")
        products = []
    for sku in products:
        if str(sku) not in catalog:
            fail("products", f"unknown SKU {sku}: not in the product catalog")
        elif catalog[str(sku)].product_class is None:
            fail("products", f"{sku} has no product class; donation products need one (R-N2)")
    raw_limits = data.get("limits", {})
    limits = limits_type()
    if isinstance(raw_limits, Mapping):
        values = {}
        for key in ("each_desktop_or_cal", "windows_server_standard", "other_servers_total"):
            value = raw_limits.get(key, getattr(limits, key))
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"limits.{key}", "must be a whole number of at least 1 (R-N2)")
                value = 1
            values[key] = value
        limits = limits_type(**values)
    else:
        fail("limits", "must be a table")
    grant = data.get("grant", "at_once")
    if grant not in GRANT_MODES:
        fail("grant", "must be at_once (requests that pass every rule are granted at once) or by_staff "
                      "(every request waits for staff, R-N4)")
    terms_version = data.get("terms_version", "1")
    if not isinstance(terms_version, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", terms_version):
        fail("terms_version", "must name the version of the terms of use, such as 1 or 2013-07 (R-N10)")
    unknown = set(data) - {"slug", "kind", "name", "timezone", "program_start", "products", "limits", "names", "grant",
                           "terms_version"}
    for key in sorted(unknown):
        fail(key, "unknown setting for a donation program")
    names = data.get("names", {})
    if errors:
        raise InputError(errors)
    return program(slug=slug, name=name, timezone=tz, program_start=start, products=tuple(str(p) for p in products),
               limits=limits, names=dict(names) if isinstance(names, Mapping) else {}, grant=str(grant),
               terms_version=str(terms_version))



def program_to_dict(program: DonationProgram) -> dict[str, Any]:
    """The campaign file's content, in its canonical order (export writes this)."""
    data: dict[str, Any] = {"slug": program.slug, "kind": program.kind, "name": program.name, "timezone": program.timezone,
                            "program_start": program.program_start, "grant": program.grant,
                            "terms_version": program.terms_version, "products": list(program.products),
                            "limits": {"each_desktop_or_cal": program.limits.each_desktop_or_cal,
                                       "windows_server_standard": program.limits.windows_server_standard,
                                       "other_servers_total": program.limits.other_servers_total}}
    if program.names:
        data["names"] = dict(sorted(program.names.items()))
    return data
