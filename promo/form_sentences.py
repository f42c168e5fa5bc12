"""Console form errors as sentences a marketer reads ("Give the campaign a name."), not the
parser's "name: is required" (issue 19, item 12). The domain keeps its terse messages (the
API and the CLI show them with the field's path); the console turns the common ones into
sentences here, each naming its field, and leaves the others as they are."""

from __future__ import annotations

from collections.abc import Callable

from promo.errors import FieldError
from promo.i18n import N_

_DATE = "must be a date such as 2013-07-18 (an inclusive day in the campaign's time zone)"
_REQUIRED = "is required"

# (field, domain message) -> the sentence shown instead.
SENTENCES = {
    ("name", _REQUIRED): N_("Give the campaign a name."),
    ("slug", _REQUIRED): N_("Give the campaign an address (slug), such as office365-xbox-2026."),
    ("timezone", _REQUIRED): N_("Choose the campaign's time zone, such as Europe/Copenhagen."),
    ("reward.name", _REQUIRED): N_("Give the reward a name."),
    ("reward.terms_url", _REQUIRED): N_("Give the link to the reward's terms."),
    ("support.product", _REQUIRED): N_("Give the product support contact: a link or a phone number (it is required)."),
    ("eligibility_window.first_day", _DATE): N_("Enter the first day of purchase and activation as a date, such as 2026-06-01."),
    ("eligibility_window.last_day", _DATE): N_("Enter the last day of purchase and activation as a date, such as 2026-08-31."),
    ("redemption_window.first_day", _DATE): N_("Enter the day redemption opens as a date, such as 2026-06-01."),
    ("redemption_window.last_day", _DATE): N_("Enter the day redemption closes as a date, such as 2026-09-30."),
    ("reward.code_expires_on", _DATE): N_("Enter the day the reward codes expire as a date, such as 2026-12-31."),
    ("countries", "must list at least one ISO country code"): N_("Choose at least one country."),
    ("products", "names no qualifying product"): N_("Choose at least one qualifying product."),
}


def sentence(error: FieldError, gettext: Callable[[str], str]) -> str | None:
    """The sentence for `error` in the reader's language, or None when it has none."""
    # "is required" may carry its field's description ("is required: the support for ..."),
    # which the sentence gives in its own words.
    message = _REQUIRED if error.message.startswith(_REQUIRED) else error.message
    known = SENTENCES.get((error.field, message))
    return gettext(known) if known else None


def file_sentence(error: FieldError, gettext: Callable[[str], str]) -> str:
    """A campaign file's problem: a sentence when no file came, else the parser's line and field."""
    if error.field == "file" and error.message.startswith("choose"):
        return gettext(N_("Choose a campaign file (.toml) to import."))
    return str(error)
