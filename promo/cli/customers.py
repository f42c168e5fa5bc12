"""`promo evaluate` and `promo redeem`: a customer's case, from the command line (support)."""

from __future__ import annotations

import sys

import click

from promo.cli.common import EXIT_OK, EXIT_REFUSED, database, emit, handles_errors, instant_option, migrated
from promo.config import Settings
from promo.evaluation import DryRun, evaluate_dry_run
from promo.redemption import RedeemRequest, redeem_sync
from promo.timeutil import utcnow


@click.command()
@click.option("--campaign", "slug", required=True)
@click.option("--sku", required=True)
@click.option("--country", default="", help="ISO country code where the product was bought and activated")
@click.option("--purchase-country", default="", help="where it was bought, when not --country (R-X2)")
@click.option("--activation-country", default="", help="where it was activated, when not --country (R-X2)")
@click.option("--purchased-at", required=True, help="a date (2013-08-01: that day in the campaign's zone) or a time with an offset")
@click.option("--activated-at", required=True)
@click.option("--at", "at", default=None, help="evaluate as of this instant (e.g. 2013-10-01T12:00:00Z); default now")
@click.pass_obj
@handles_errors
def evaluate(settings: Settings, slug: str, sku: str, country: str, purchase_country: str, activation_country: str,
             purchased_at: str, activated_at: str, at: str | None) -> None:
    """Dry run: would this purchase qualify? Prints the decision as JSON."""
    now = instant_option(at, "at")
    dry = DryRun(slug, sku, country, purchased_at, activated_at, purchase_country=purchase_country,
                 activation_country=activation_country)
    with database(settings) as conn:
        decision = evaluate_dry_run(migrated(conn), dry, now)
    emit(decision.as_dict())
    sys.exit(EXIT_OK if decision.eligible else EXIT_REFUSED)


@click.command()
@click.option("--campaign", "slug", required=True)
@click.option("--account", required=True, help="the account's email address (the code is emailed there)")
@click.option("--product-key", required=True)
@click.option("--country", default=None, help="country of purchase as the customer states it (optional)")
@click.option("--residence-country", default=None,
              help="where the customer lives; chooses sponsor, law and support (R-X13). Default: the country of purchase")
@click.option("--accept-terms", is_flag=True, help="the customer has accepted the offer's terms and the reward's (R-X8, R-X22)")
@click.option("--idempotency-key", default=None, help="repeat-safe: the same key returns the first result")
@click.pass_obj
@handles_errors
def redeem(settings: Settings, slug: str, account: str, product_key: str, country: str | None, residence_country: str | None,
           accept_terms: bool, idempotency_key: str | None) -> None:
    """Redeem for a customer (support): the same path as the web. Prints the result, code masked."""
    request = RedeemRequest(campaign=slug, account_email=account, product_key=product_key,
                            terms_accepted=accept_terms, declared_country=country, residence_country=residence_country,
                            idempotency_key=idempotency_key, client_ip=None).normalized()
    with database(settings) as conn:
        result = redeem_sync(migrated(conn), request, utcnow())
    emit(result.as_dict())
    sys.exit(EXIT_OK if result.redeemed else EXIT_REFUSED)
