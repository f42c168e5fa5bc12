"""What a destructive console action will do, stated before it is done (issue 19, item 3):
the consequence pages of publishing and pausing a campaign and of voiding a batch's codes,
with the figures read just now and worded in the staff member's language. The console's
views (promo/views/console.py) are wrapped with these by promo.views.confirm.confirmed."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request

from promo.campaign_service import campaign_batch, campaign_with_counts
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.errors import InputError
from promo.i18n import N_
from promo.staff import StaffSession
from promo.timeutil import utcnow
from promo.views.confirm import Consequence
from promo.views.staffauth import staff_gettext


def campaign_slug(request: Request) -> str:
    return str(request.path_params["slug"])


async def state_consequence(request: Request, session: StaffSession, form: FormData) -> Consequence | None:
    """Publishing and pausing change what customers can do at once: both are confirmed."""
    action, slug, now = str(form.get("action") or ""), campaign_slug(request), utcnow()
    if action not in ("publish", "pause"):
        return None  # resuming, or an unknown action that state_submit refuses

    stored, codes = await request.app.state.db.read(campaign_with_counts, slug, kind=PurchaseOffer, now=now)
    redeemed = codes["issued"]  # an offer's codes are issued by redemptions only
    if (action == "publish" and stored.published) or (action == "pause" and (not stored.published or stored.paused)):
        return None  # not possible now: change_state refuses it with the reason
    c, state, _ = stored.campaign, stored.status(now), staff_gettext(request)
    window = _(N_("%(first)s to %(last)s (%(zone)s)")) % {"first": c.redemption.first_day, "last": c.redemption.last_day,
                                                          "zone": c.timezone}
    named = {"name": c.name, "slug": slug}
    back = f"/console/campaigns/{slug}"
    if action == "publish":
        later = _(N_("from %(day)s")) % {"day": c.redemption.first_day} if c.redemption.is_before(now) \
            else _(N_("never: its window has ended"))
        opens = _(N_("at once")) if c.redemption.contains(now) else later
        return Consequence(
            title=_(N_("Publish the campaign")), button=_(N_("Publish %(name)s")) % named, back=back,
            sentence=_(N_("Publish campaign %(name)s (%(slug)s) with %(available)s codes available: customers in %(countries)s "
                          "countries can redeem it %(opens)s; its redemption window is %(window)s."))
            % {**named, "available": f"{codes['available']:,}", "countries": len(c.countries), "opens": opens, "window": window},
            figures={"campaign": slug, "action": action, "state": state, "updated_at": stored.updated_at,
                     "available": codes["available"], "countries": len(c.countries)},
            details=[_(N_("A published campaign cannot go back to being a draft; you can pause it."))])
    return Consequence(
        title=_(N_("Pause the campaign")), button=_(N_("Pause %(name)s")) % named, back=back,
        sentence=_(N_("Pause campaign %(name)s (%(slug)s), now %(state)s: from this moment customers are refused "
                      "(rule CAMPAIGN) until you resume it.")) % {**named, "state": _(state)},
        # Redemptions go on until the pause: counts shown, not bound, or a busy campaign could not be paused.
        figures={"campaign": slug, "action": action, "state": state, "updated_at": stored.updated_at},
        details=[_(N_("So far %(issued)s codes have been issued; %(available)s are available."))
                 % {"issued": f"{redeemed:,}", "available": f"{codes['available']:,}"},
                 _(N_("Resuming later reopens it within its redemption window."))])


async def void_consequence(request: Request, session: StaffSession, form: FormData) -> Consequence:
    slug, batch_id = campaign_slug(request), request.path_params["batch_id"]  # an int64 by the route's convertor
    stored, batch = await request.app.state.db.read(campaign_batch, slug, batch_id, kind=PurchaseOffer)
    if batch is None:
        raise InputError.one("batch", f"batch {batch_id} is not one of this campaign's code batches")
    n, issued, _ = batch.voidable, batch.issued, staff_gettext(request)
    # One msgid per number form: Danish and Norwegian, like English, say "1 code", "2 codes".
    facts = {"n": f"{n:,}", "batch": batch.id, "file": batch.source, "name": stored.campaign.name, "slug": slug}
    return Consequence(
        title=_(N_("Void codes")), button=(_(N_("Void 1 code")) if n == 1 else _(N_("Void %(n)s codes"))) % facts,
        back=f"/console/campaigns/{slug}",
        sentence=(_(N_("Void 1 unissued code of batch %(batch)s (%(file)s) of campaign %(name)s (%(slug)s).")) if n == 1 else
                  _(N_("Void %(n)s unissued codes of batch %(batch)s (%(file)s) of campaign %(name)s (%(slug)s)."))) % facts,
        figures={"campaign": slug, "batch": batch.id, "unissued": n},
        details=[(_(N_("1 code of this batch already issued stays with its owner (R-X10).")) if issued == 1 else
                  _(N_("%(n)s codes of this batch already issued stay with their owners (R-X10).")) % {"n": f"{issued:,}"}),
                 _(N_("Voided codes are never issued. This cannot be undone."))])
