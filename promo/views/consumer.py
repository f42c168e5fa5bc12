"""Consumer pages: offers, redeem, review requests, My rewards, the language. Thin: every
decision is made by the services (redemption, rewards, reviews); this module speaks HTTP and
HTML. Signing in and out is views/consumer_account.py; the guards are views/guards.py."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from promo.activations import parse_activation
from promo.campaign_store import StoredOf, get_campaign, get_campaign_of, list_campaigns
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.campaigns.terms import blocks
from promo.catalog import get_sku, load_catalog
from promo.countries import country_codes
from promo.errors import InputError, NotFound
from promo.identifiers import mask_code
from promo.redemption import HELD_FOR_REVIEW, RedeemRequest, redeem
from promo.reviews import store_receipt, submit_claim
from promo.rewards import Reward, get_reward, resend_reward, rewards_of
from promo.terms_store import accepted_terms
from promo.timeutil import utcnow
from promo.views.context import (
    COUNTRY_COOKIE,
    LANG_COOKIE,
    PageContext,
    client_ip,
    limits_of,
    local_path,
    page_context,
    redirect,
    render,
    set_cookie,
    templates_of,
)
from promo.views.guards import sign_in_first, signed_in_post
from promo.views.refusals import explain

YEAR = 365 * 24 * 3600
_VERSION = re.compile(r"[0-9a-f]{64}")  # a terms version: sha256 hex


def _db(request: Request) -> Any:
    return request.app.state.db


async def home(request: Request) -> Response:
    ctx = await page_context(request)
    now = utcnow()
    chosen = (request.query_params.get("country") or "").upper()
    if chosen in country_codes():
        ctx.country, ctx.country_chosen = chosen, True
    open_offers = [s.campaign for s in await _db(request).read(list_campaigns)
                   if s.published and isinstance(s.campaign, PurchaseOffer) and s.campaign.is_open(now)]
    offers = [o for o in open_offers if ctx.country is None or ctx.country in o.countries]
    if not offers and not ctx.country_chosen:
        # The browser's region is a hint, not the visitor's word: it never leads to a dead end
        # ("no offers for United States"); they see every open offer and choose.
        offers, ctx.country = open_offers, None
    response = render(request, ctx, "consumer/home.html", offers=offers,
                      all_countries=ctx.l10n.countries(tuple(sorted(country_codes()))))
    if chosen in country_codes():
        set_cookie(response, ctx, COUNTRY_COOKIE, chosen, YEAR)
    return response


async def _campaign(request: Request) -> Any:
    """The offer behind the URL; a draft does not exist for consumers."""
    return (await _stored_offer(request)).campaign


async def _stored_offer(request: Request) -> StoredOf[PurchaseOffer]:
    stored: StoredOf[PurchaseOffer] = await _db(request).lookup(get_campaign_of, request.path_params["slug"], PurchaseOffer,
                                                                what="offer")
    if not stored.published:
        raise NotFound("offer", request.path_params["slug"])
    return stored


async def offer(request: Request) -> Response:
    ctx = await page_context(request)
    campaign = await _campaign(request)
    countries = ctx.l10n.countries(campaign.countries)
    qualifying, excluded = _products_of(campaign, await _db(request).read(load_catalog))
    now = utcnow()
    return render(request, ctx, "consumer/offer.html", campaign=campaign, countries=countries,
                  sponsor=campaign.sponsor_for(ctx.country or ""), is_open=campaign.is_open(now),
                  not_yet=campaign.redemption.is_before(now), qualifying=qualifying, excluded=excluded,
                  closes_at=campaign.redemption.end - timedelta(microseconds=1),  # its last instant, shown to the second
                  **_support_routes(campaign, ctx.country))


def _products_of(campaign: Any, catalog: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The offer's qualifying products (those it lists, in its order, then those qualifying by
    attribute), and the excluded products it names: for the offer page, by name."""
    rules = campaign.products
    listed = [catalog[sku] for sku in rules.qualifying_skus if sku in catalog]
    by_attribute = [s for s in catalog.values() if s not in listed and rules.is_qualifying(s)]
    return ([s for s in listed + by_attribute if not rules.is_excluded(s)],
            [catalog[sku] for sku in rules.excluded_skus if sku in catalog])


def _support_routes(campaign: Any, country: str | None, *, every_country: bool = True) -> dict[str, Any]:
    """R-X16: the support routes for a page: the redemption contact for `country` when known,
    and (`every_country`) the contacts of the other countries too."""
    route = campaign.support_route(country) if country else None
    return {"support": campaign.support, "support_country": country, "support_route": route, "every_country": every_country}


async def terms_page(request: Request) -> Response:
    """R-X22: the offer's terms and conditions in the reader's language (else English); with
    ?version=, the earlier version a redemption accepted, as it was recorded."""
    ctx = await page_context(request)
    stored = await _stored_offer(request)
    campaign = stored.campaign
    version = request.query_params.get("version")
    if version is not None:
        terms = (await _db(request).read(accepted_terms, stored.id, version, current=campaign.terms)
                 if _VERSION.fullmatch(version) else None)
    else:
        terms = campaign.terms
    if terms is None:
        raise NotFound("terms", version or campaign.slug)
    return render(request, ctx, "consumer/terms.html", campaign=campaign, terms=terms, terms_lang=terms.language_for(ctx.lang),
                  blocks=blocks, current=campaign.terms is not None and terms.version == campaign.terms.version,
                  **_support_routes(campaign, ctx.country))


async def redeem_form(request: Request) -> Response:
    ctx = await page_context(request)
    if ctx.session is None:
        return sign_in_first(request)
    return _redeem_page(request, ctx, await _campaign(request))


def _redeem_page(request: Request, ctx: PageContext, campaign: Any, status: int = 200, *, values: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, refusals: list[Any] | None = None) -> Response:
    values = values or {"country": ctx.country if ctx.country and ctx.country in campaign.countries else ""}
    # Customer service where the customer lives (R-X13), else the country of purchase chosen, else theirs (known ones only).
    support_country = next((c for c in (values.get("residence_country", "").upper(), values.get("country", "").upper(),
                                        ctx.country) if c in country_codes()), "")
    return render(request, ctx, "consumer/redeem.html", status, campaign=campaign, support_country=support_country,
                  refusal_support=campaign.support_route(support_country),
                  country_options=_country_options(request, ctx, campaign, values["country"]), values=values,
                  residence_options=_residence_options(request, ctx, campaign, values.get("residence_country", "")),
                  errors=errors or {}, refusals=refusals or [], idempotency_key=secrets.token_urlsafe(16))



def _residence_options(request: Request, ctx: PageContext, campaign: Any, chosen: str) -> Markup:
    """R-X13: where the customer may live (the countries the offer's sponsors cover), first
    "same as the country of purchase" (the default). Cached like _country_options."""
    codes = campaign.residence_countries or tuple(sorted(country_codes()))
    return templates_of(request).fragment(
        "consumer/_residence_options.html", ctx.lang, countries=ctx.l10n.countries(codes),
        selected=chosen if chosen in codes else "")


def _country_options(request: Request, ctx: PageContext, campaign: Any, chosen: str | None) -> Markup:
    """The offer's countries as <option>s in the reader's language, `chosen` selected: a
    fragment rendered once per language, country list and choice (only one of the offer's
    countries is ever a cache key, never arbitrary form input)."""
    return templates_of(request).fragment(
        "consumer/_country_options.html", ctx.lang, countries=ctx.l10n.countries(campaign.countries),
        selected=chosen if chosen in campaign.countries else "")


async def redeem_submit(request: Request) -> Response:
    checked = await signed_in_post(request)
    if isinstance(checked, Response):
        return checked
    ctx, form = checked
    assert ctx.session is not None
    # The redemption loads its campaign inside its own transaction (an unknown slug is a 404
    # from there); the view reads the campaign only when it has a page to render again.
    values = {name: str(form.get(name) or "") for name in ("product_key", "country", "residence_country", "accept_terms")}
    attempt = RedeemRequest(
        campaign=request.path_params["slug"], account_email=ctx.session.account_email, product_key=values["product_key"],
        terms_accepted=values["accept_terms"] == "yes", declared_country=values["country"] or None,
        idempotency_key=str(form.get("idempotency_key") or "") or None, client_ip=client_ip(request), locale=ctx.lang,
        residence_country=values["residence_country"] or None)
    try:
        result = await redeem(_db(request), attempt, utcnow(), guess_limit=limits_of(request).guess_limit)
    except InputError as exc:
        errors = {e.field: _field_message(ctx, e.field) for e in exc.errors}
        return _redeem_page(request, ctx, await _campaign(request), 422, values=values, errors=errors)
    if result.redeemed:
        request.app.state.wake_relay()
        return redirect(f"/rewards/{result.redemption_id}")
    reasons = {f.reason for f in result.decision.failures}
    limited = "too_many_attempts" in reasons
    campaign = await _campaign(request)
    status = 429 if limited else 202 if HELD_FOR_REVIEW in reasons else 422  # 202: a person decides (R-X12)
    page = _redeem_page(request, ctx, campaign, status, values=values,
                        refusals=explain(result.decision.failures, campaign, ctx.l10n,
                                         await _products_named_in(request, result.decision.failures)))
    if limited:
        page.headers["Retry-After"] = "3600"
    return page


async def _products_named_in(request: Request, failures: tuple[Any, ...]) -> dict[str, Any]:
    """The catalog entries (with their names per language) of the SKUs refusals mention."""
    skus = {str(f.params["sku"]) for f in failures if "sku" in f.params}
    return {sku: await _db(request).read(get_sku, sku, with_names=True) for sku in sorted(skus)}


def _field_message(ctx: PageContext, field: str) -> str:
    messages = {
        "product_key": ctx.l10n.gettext("Enter the 25-character product key from your Office 365 product."),
        "declared_country": ctx.l10n.gettext("Choose the country where you bought the product."),
        "residence_country": ctx.l10n.gettext(
            "Choose the country where you live from the list: the offer's terms name a sponsor for those countries only."),
    }
    return messages.get(field, ctx.l10n.gettext("Check this field."))


async def _owned_reward(request: Request, ctx: PageContext) -> Reward:
    redemption_id = request.path_params["redemption_id"]
    reward: Reward | None = await _db(request).read(get_reward, redemption_id)
    # Somebody else's reward is "not found": a code is shown to its owner only.
    if reward is None or ctx.session is None or reward.account_email != ctx.session.account_email:
        raise NotFound("reward", str(redemption_id))
    return reward


async def reward_page(request: Request) -> Response:
    ctx = await page_context(request)
    if ctx.session is None:
        return sign_in_first(request)
    reward = await _owned_reward(request, ctx)
    campaign = (await _db(request).read(get_campaign, reward.campaign_slug)).campaign
    # R-X13: where the customer lives chooses the sponsor, the law and the support contact.
    return render(request, ctx, "consumer/reward.html", reward=reward, campaign=campaign,
                  resent=request.query_params.get("resent"), sponsor=campaign.sponsor_for(reward.residence),
                  **_support_routes(campaign, reward.residence, every_country=False))


async def rewards_page(request: Request) -> Response:
    ctx = await page_context(request)
    if ctx.session is None:
        return sign_in_first(request)
    rewards = await _db(request).read(rewards_of, ctx.session.account_email)
    names = {s.campaign.slug: s.campaign for s in await _db(request).read(list_campaigns)}
    # R-X13 / R-X16: each reward's sponsor, law and support contact, by where its owner lives.
    sponsors = {r.redemption_id: names[r.campaign_slug].sponsor_for(r.residence) for r in rewards if r.campaign_slug in names}
    support = {r.redemption_id: names[r.campaign_slug].support_route(r.residence) for r in rewards
               if r.campaign_slug in names and r.residence}
    return render(request, ctx, "consumer/rewards.html", rewards=rewards, campaigns=names, mask=mask_code,
                  sponsors=sponsors, support=support)


async def resend(request: Request) -> Response:
    """R-X10: re-send the *same* code to the *same* address (support, not replacement)."""
    checked = await signed_in_post(request)
    if isinstance(checked, Response):
        return checked
    ctx, _form = checked
    reward = await _owned_reward(request, ctx)
    queued = await _db(request).write(resend_reward, reward, limit=limits_of(request).resend_per_hour, now=utcnow(),
                                      locale=ctx.lang)
    if queued:
        request.app.state.wake_relay()
    return redirect(f"/rewards/{reward.redemption_id}?resent={'yes' if queued else 'limited'}")


async def language(request: Request) -> Response:
    ctx = await page_context(request)
    response = redirect(local_path(request.query_params.get("next")))
    chosen = request.query_params.get("lang", "")
    if chosen in request.app.state.languages:
        set_cookie(response, ctx, LANG_COOKIE, chosen, YEAR)
    return response


async def review_form(request: Request) -> Response:
    """R-X11: no activation record for the key: ask for a manual review with a receipt."""
    ctx = await page_context(request)
    if ctx.session is None:
        return sign_in_first(request)
    campaign = await _campaign(request)
    values = {"product_key": request.query_params.get("product_key", ""),
              "cause": "unbound" if request.query_params.get("cause") == "unbound" else ""}
    return await _review_page(request, ctx, campaign, values=values)


async def _review_page(request: Request, ctx: PageContext, campaign: Any, status: int = 200, *, values: dict[str, str],
                       errors: dict[str, str] | None = None) -> Response:
    # `cause` only picks the page's opening words (the link from the refusal says why); the
    # claim's cause is decided from the records when it is sent, so the page reveals nothing.
    catalog = await _db(request).read(load_catalog)
    products = [sku for sku in catalog.values() if campaign.products.is_qualifying(sku) and not campaign.products.is_excluded(sku)]
    return render(request, ctx, "consumer/review.html", status, campaign=campaign, values=values, errors=errors or {},
                  products=products, country_options=_country_options(request, ctx, campaign, values.get("country")))


async def review_submit(request: Request) -> Response:
    checked = await signed_in_post(request, max_files=1)  # the receipt
    if isinstance(checked, Response):
        return checked
    ctx, form = checked
    assert ctx.session is not None
    campaign = await _campaign(request)
    limits = limits_of(request)
    values = {name: str(form.get(name) or "") for name in ("product_key", "sku", "country", "purchased_at", "activated_at", "cause")}
    values["cause"] = "unbound" if values["cause"] == "unbound" else ""
    messages = {
        "product_key": ctx.l10n.gettext("Enter the 25-character product key from your Office 365 product."),
        "sku": ctx.l10n.gettext("Choose the product you bought."),
        "country": ctx.l10n.gettext("Choose the country where you bought the product."),
        "purchased_at": ctx.l10n.gettext("Enter the date on your receipt, such as 2013-08-01."),
        "activated_at": ctx.l10n.gettext("Enter the date you activated the product, on or after the purchase date."),
        "receipt": ctx.l10n.gettext("Attach your dated receipt as a PDF, JPEG or PNG file of up to 5 MB."),
    }
    errors: dict[str, str] = {}
    try:
        evidence = parse_activation({**values, "account_email": ""}, await _db(request).read(load_catalog))
    except InputError as exc:
        errors.update({e.field: messages.get(e.field, e.message) for e in exc.errors})
    upload = form.get("receipt")
    content = await upload.read(limits.max_receipt_bytes + 1) if hasattr(upload, "read") else b""
    await form.close()  # the upload's temporary file
    receipt_name = kind = ""
    if not errors:
        try:
            receipt_name, kind = store_receipt(limits.receipts_dir, content, limits.max_receipt_bytes)
        except InputError:
            errors["receipt"] = messages["receipt"]
    if errors:
        return await _review_page(request, ctx, campaign, 422, values=values, errors=errors)
    try:
        await _db(request).write(submit_claim, campaign=campaign.slug, account_email=ctx.session.account_email,
                                 activation=evidence, receipt_file=receipt_name, kind=kind, locale=ctx.lang,
                                 ip=client_ip(request), now=utcnow())
    except InputError:
        (limits.receipts_dir / receipt_name).unlink(missing_ok=True)
        return await _review_page(request, ctx, campaign, 422, values=values, errors={"product_key": ctx.l10n.gettext(
            "This product key cannot be reviewed: it may already be waiting for review, or it can be redeemed directly.")})
    return render(request, ctx, "consumer/review_sent.html", campaign=campaign)


routes = [
    # The redemption first: the router tries routes in order and this is the hot path (issue 18).
    Route("/offers/{slug}/redeem", redeem_submit, methods=["POST"], name="consumer.redeem"),
    Route("/", home, name="consumer.home"),
    Route("/offers/{slug}", offer, name="consumer.offer"),
    Route("/offers/{slug}/terms", terms_page, name="consumer.terms"),
    Route("/offers/{slug}/redeem", redeem_form, methods=["GET"], name="consumer.redeem_form"),
    Route("/offers/{slug}/review", review_form, methods=["GET"], name="consumer.review_form"),
    Route("/offers/{slug}/review", review_submit, methods=["POST"], name="consumer.review"),
    Route("/rewards", rewards_page, name="consumer.rewards"),
    Route("/rewards/{redemption_id:int64}", reward_page, name="consumer.reward"),
    Route("/rewards/{redemption_id:int64}/resend", resend, methods=["POST"], name="consumer.resend"),
    Route("/language", language, name="consumer.language"),
]
