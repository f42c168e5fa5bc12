"""Words the staff pages show by value (a campaign's state, a role, an upload's state),
marked here for the catalogs: the templates translate them where they show them, with
`_(value)`, so the stored values stay English (issue 19, item 5)."""

from __future__ import annotations

from promo.i18n import N_

CAMPAIGN_STATES = (N_("draft"), N_("scheduled"), N_("live"), N_("paused"), N_("ended"))
ROLES = (N_("admin"), N_("marketer"), N_("auditor"), N_("support"))
UPLOAD_STATES = (N_("running"), N_("done"), N_("failed"))
ORGANISATION_STANDINGS = (N_("pending"), N_("approved"), N_("under_review"), N_("revoked"), N_("rejected"))
REQUEST_STATES = (N_("requested"), N_("held"), N_("granted"), N_("refused"))
RETURN_STATES = (N_("pending"), N_("completed"), N_("rejected"))
# "Find a redemption": what to search by (promo/redemption_lookup.py LOOKUPS, shown by label).
LOOKUP_LABELS = (N_("Account (email address)"), N_("Product key: its last characters"),
                 N_("Reward code: its last characters"), N_("Redemption number"))
DECISIONS = (N_("redeemed"), N_("refused"))
# A review claim's state (promo/reviews.py, review_claims.status).
REVIEW_STATES = (N_("pending"), N_("approved"), N_("rejected"))
MAIL_STATES = (N_("queued"), N_("sent"), N_("failed"))
# A campaign's projected run-out in words (promo/stock.py RunOut.text); a date passes unchanged.
RUN_OUT = (N_("not at this rate"), N_("out of codes now"), N_("redemption has closed"))
