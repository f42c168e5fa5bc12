"""`promo campaigns import|export|list`, `promo import-activations` and `promo import-codes`:
campaign files, and the activation records and reward codes a campaign runs on."""

from __future__ import annotations

from pathlib import Path

import click

from promo.activations import import_activations
from promo.campaign_store import get_campaign, list_campaigns, save_campaign
from promo.campaigns import parse_campaign_file, render_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog
from promo.cli.common import CLI_ACTOR, database, fail, handles_errors, migrated
from promo.codes import stock
from promo.config import Settings
from promo.db import transaction
from promo.errors import InputError
from promo.stock import import_and_rearm
from promo.timeutil import utcnow


@click.group()
def campaigns() -> None:
    """Campaign definitions (TOML files)."""


@campaigns.command("import")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--shipped", metavar="SLUG", help="import a campaign shipped with Promo instead of a file")
@click.pass_obj
@handles_errors
def campaigns_import(settings: Settings, file: Path | None, shipped: str | None) -> None:
    """Load a campaign file (insert, or update by slug; every change is audited)."""
    if (file is None) == (shipped is None):
        fail("give a FILE or --shipped SLUG")
    try:
        text = file.read_text(encoding="utf-8") if file else shipped_campaign_text(str(shipped))
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise InputError.one("file", f"cannot be read: {exc}") from None
    with database(settings) as conn:
        migrated(conn)
        campaign = parse_campaign_file(text, load_catalog(conn))
        with transaction(conn):
            _, changes = save_campaign(conn, campaign, actor=CLI_ACTOR, now=utcnow())
    click.echo(f"{campaign.slug}: {len(changes)} field(s) changed" if changes else f"{campaign.slug}: unchanged")


@campaigns.command("export")
@click.argument("slug")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="write to a file instead of stdout")
@click.pass_obj
@handles_errors
def campaigns_export(settings: Settings, slug: str, output: Path | None) -> None:
    """Write a campaign back as its TOML file."""
    with database(settings) as conn:
        text = render_campaign_file(get_campaign(migrated(conn), slug).campaign)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@campaigns.command("list")
@click.pass_obj
@handles_errors
def campaigns_list(settings: Settings) -> None:
    """Campaigns with their windows and code stock."""
    now = utcnow()
    with database(settings) as conn:
        for s in list_campaigns(migrated(conn)):
            c = s.campaign
            counts = stock(conn, campaign_id=s.id, not_expiring_before=c.code_expires_at, now=now)
            click.echo(
                f"{c.slug}\t{c.kind}\t{c.schedule()} {c.timezone}\t"
                + " ".join(f"{k}={v}" for k, v in counts.items())
            )


@click.command("import-activations")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@handles_errors
def import_activations_command(settings: Settings, file: Path) -> None:
    """Import activation records (CSV: product_key,sku,purchase_country,activation_country,purchased_at,
    activated_at,account_email; a single `country` column means both countries)."""
    with database(settings) as conn:
        count = import_activations(migrated(conn), source=str(file), catalog=load_catalog(conn), now=utcnow())
    click.echo(f"imported {count} activation record(s)")


@click.command("import-codes")
@click.option("--campaign", "slug", required=True)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@handles_errors
def import_codes_command(settings: Settings, slug: str, file: Path) -> None:
    """Import reward codes (CSV: code, optional expires_at); all or nothing."""
    with database(settings) as conn:
        stored = get_campaign(migrated(conn), slug)
        report = import_and_rearm(conn, stored, source=str(file), source_name=file.name, now=utcnow(), actor=CLI_ACTOR)
    click.echo(f"imported {report.imported} code(s) into {slug} (batch {report.batch_id})")
