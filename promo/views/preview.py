""""View as customer" (issue 19, item 10): a campaign's consumer pages (offer, redeem form,
reward page) and its emails, in each language, as a customer would see them; for staff
who may edit campaigns, before publishing too. Every page says it is a preview (a banner,
templates/preview/_banner.html), shows the sample code of promo/preview.py, and can send
nothing: its forms have no action (and no method), their buttons are disabled, and the
page's Content-Security-Policy forbids form submission outright (form-action 'none').
Nothing is written: the pages read the campaign and the catalog, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from promo.countries import country_codes
from promo.email_layout import EmailParts, render_email, service_name
from promo.errors import NotFound
from promo.i18n import Localizer, languages
from promo.preview import EMAILS, PAGES, SAMPLE_ACCOUNT, Preview, email_context, load_preview, preview_country, sample_reward
from promo.staff import POLICY, StaffSession
from promo.timeutil import utcnow
from promo.views.context import PageContext, redirect, render
from promo.views.email_frame import email_frame
from promo.views.staffauth import require_role

# The site's policy (promo/app.py), but no form may be submitted from a preview.
PREVIEW_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'none'; "
                  "frame-ancestors 'none'; base-uri 'none'")


@dataclass(frozen=True)
class PreviewNav:
    """What the banner needs: where the preview's pages are, and which one this is."""

    slug: str
    lang: str
    page: str  # one of PAGES, or "email/<template>"
    country: str
    published: bool

    @property
    def console(self) -> str:
        return f"/console/campaigns/{self.slug}"

    def url(self, page: str | None = None, lang: str | None = None) -> str:
        """Another page in this country; the same page in another language, where its customer
        lives (preview_country: da, Denmark)."""
        if lang is not None:
            return f"{self.console}/preview/{lang}/{self.page}"
        return f"{self.console}/preview/{self.lang}/{page or self.page}?country={self.country}"

    @property
    def pages(self) -> tuple[str, ...]:
        return PAGES

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(f"email/{name}" for name in EMAILS)

    @property
    def languages(self) -> tuple[str, ...]:
        return languages()


def _lang(request: Request) -> str:
    lang = str(request.path_params["lang"])
    if lang not in languages():
        raise NotFound("language", lang)
    return lang


async def _load(request: Request) -> Preview:
    preview: Preview = await request.app.state.db.read(load_preview, str(request.path_params["slug"]))
    return preview


def _nav(request: Request, preview: Preview, lang: str, page: str) -> PreviewNav:
    country = preview_country(preview.campaign, request.query_params.get("country"), lang)
    return PreviewNav(slug=preview.campaign.slug, lang=lang, page=page, country=country, published=preview.stored.published)


def _page_context(request: Request, nav: PreviewNav) -> PageContext:
    """A customer who is nobody: no session, no cookie set, no CSRF token that works anywhere."""
    return PageContext(lang=nav.lang, country=nav.country, session=None, csrf_token="preview",
                       secure=request.scope.get("scheme") == "https", country_chosen=True)


def _answer(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@require_role(*POLICY.edit_campaigns)
async def start(request: Request, session: StaffSession) -> Response:
    """The "View as customer" link: the offer page in English."""
    await _load(request)  # an unknown slug is a 404 here, not on the next page
    return redirect(f"/console/campaigns/{request.path_params['slug']}/preview/en/offer")


@require_role(*POLICY.edit_campaigns)
async def page(request: Request, session: StaffSession) -> Response:
    lang, name = _lang(request), str(request.path_params["page"])
    if name not in PAGES:
        raise NotFound("preview page", name)
    preview = await _load(request)
    nav = _nav(request, preview, lang, name)
    ctx, campaign, now = _page_context(request, nav), preview.campaign, utcnow()
    route = campaign.support_route(nav.country)
    support: dict[str, Any] = {"support": campaign.support, "support_country": nav.country, "support_route": route,
               "every_country": name == "offer"}
    if name == "offer":
        return _answer(render(
            request, ctx, "consumer/offer.html", preview=nav, campaign=campaign, countries=ctx.l10n.countries(campaign.countries),
            sponsor=campaign.sponsor_for(nav.country), is_open=campaign.is_open(now), not_yet=campaign.redemption.is_before(now),
            qualifying=preview.qualifying, excluded=preview.excluded,
            closes_at=campaign.redemption.end - timedelta(microseconds=1), **support))
    if name == "redeem":
        templates = request.app.state.templates
        residence = campaign.residence_countries or tuple(sorted(country_codes()))
        return _answer(render(
            request, ctx, "consumer/redeem.html", preview=nav, campaign=campaign, support_country=nav.country,
            refusal_support=route, values={"country": nav.country}, errors={}, refusals=[], idempotency_key="preview",
            country_options=templates.fragment("consumer/_country_options.html", lang, countries=ctx.l10n.countries(campaign.countries),
                                               selected=nav.country),
            residence_options=templates.fragment("consumer/_residence_options.html", lang, countries=ctx.l10n.countries(residence),
                                                 selected="")))
    reward = sample_reward(campaign, nav.country, now)
    return _answer(render(request, ctx, "consumer/reward.html", preview=nav, reward=reward, campaign=campaign, resent=None,
                          sponsor=campaign.sponsor_for(nav.country), **support))


async def _email(request: Request) -> tuple[PreviewNav, EmailParts]:
    lang, template = _lang(request), str(request.path_params["template"])
    if template not in EMAILS:
        raise NotFound("email", template)
    preview = await _load(request)
    nav = _nav(request, preview, lang, f"email/{template}")
    reason = Localizer(lang).gettext("Sample reason: the date on the receipt cannot be read.")
    context = email_context(template, preview.campaign, nav.country, utcnow(), sample_reason=reason)
    settings = request.app.state.settings
    return nav, render_email(request.app.state.templates, template, lang,
                             {**context, "public_url": settings.public_url, "recipient": SAMPLE_ACCOUNT},
                             service=service_name(settings.mail.from_address))


@require_role(*POLICY.edit_campaigns)
async def email_page(request: Request, session: StaffSession) -> Response:
    nav, parts = await _email(request)
    frame = f"{nav.console}/preview/{nav.lang}/{nav.page}/html?country={nav.country}"
    return _answer(render(request, _page_context(request, nav), "preview/email.html", preview=nav, parts=parts,
                          recipient=SAMPLE_ACCOUNT, html_url=frame))


@require_role(*POLICY.edit_campaigns)
async def email_html(request: Request, session: StaffSession) -> Response:
    """The email's HTML part alone, for the sandboxed frame on the email's preview page."""
    _nav, parts = await _email(request)
    return email_frame(parts.html)


routes = [
    Route("/console/campaigns/{slug}/preview", start, name="preview.start"),
    Route("/console/campaigns/{slug}/preview/{lang}/email/{template}", email_page, name="preview.email"),
    Route("/console/campaigns/{slug}/preview/{lang}/email/{template}/html", email_html, name="preview.email_html"),
    Route("/console/campaigns/{slug}/preview/{lang}/{page}", page, name="preview.page"),
]
