"""The `promo` command. Exit codes: 0 eligible / redeemed / done, 1 refused, 2 bad input.

Commands run the same storage and rule functions as the web service, on a synchronous
connection: SQLite's write lock (BEGIN IMMEDIATE) keeps them safe beside a running server.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from promo.activations import import_activations
from promo.campaign_store import get_campaign, list_campaigns, save_campaign
from promo.campaigns import parse_campaign_file, render_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog, shipped_catalog, upsert_skus
from promo.codes import import_codes, stock
from promo.config import Settings, env_name, load_settings
from promo.db import connect, migrate, pending_migrations, transaction
from promo.errors import ConfigError, InputError, NotFound
from promo.evaluation import DryRun, evaluate_dry_run
from promo.redemption import RedeemRequest, redeem_sync
from promo.timeutil import parse_instant, utcnow

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
CLI_ACTOR = "cli"
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(fn: F) -> F:
    """Turn domain errors into a clear message and exit code 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            for error in exc.errors:
                click.echo(f"error: {error}", err=True)
            if exc.total > len(exc.errors):
                click.echo(f"error: … and {exc.total - len(exc.errors)} more", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except (NotFound, ConfigError) as exc:
            fail(str(exc))
        except sqlite3.OperationalError as exc:
            fail(f"database: {exc} (has `promo migrate` been run?)")

    return wrapper  # type: ignore[return-value]


@contextmanager
def database(settings: Settings) -> Iterator[sqlite3.Connection]:
    settings.database_path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(settings.database_path, busy_timeout_ms=settings.database_busy_timeout_ms,
                   synchronous=settings.database_synchronous)
    try:
        yield conn
    finally:
        conn.close()


def migrated(conn: sqlite3.Connection) -> sqlite3.Connection:
    pending = pending_migrations(conn)
    if pending:
        fail(f"the database needs migrations ({', '.join(n for _, n, _ in pending)}): run `promo migrate`")
    return conn


def instant_option(value: str | None, field: str) -> Any:
    return parse_instant(value, field) if value else utcnow()


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="config file (default: $PROMO_CONFIG or ./config.toml)")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Promo: campaign redemption service."""
    try:
        ctx.obj = load_settings(config_path)
    except ConfigError as exc:
        fail(str(exc))


@main.command()
@click.option("--host", default=None, help="override server.host")
@click.option("--port", type=int, default=None, help="override server.port")
@click.pass_obj
@handles_errors
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Run the web service (uvicorn, uvloop + httptools when available)."""
    import uvicorn

    from promo.app import create_app
    from promo.logs import configure_logging

    if host or port:  # as PROMO_SERVER_HOST/PORT would, so the settings derived from them follow
        overrides = {env_name("server.host"): host or "", env_name("server.port"): str(port or "")}
        settings = load_settings(click.get_current_context().find_root().params["config_path"],
                                 environ={**os.environ, **{k: v for k, v in overrides.items() if v}})
    settings.require_secret_key()
    configure_logging(settings.logging_format, settings.logging_level)
    with database(settings) as conn:
        migrated(conn)
    # X-Forwarded-* are believed only from the configured proxies (uvicorn's own default
    # trusts 127.0.0.1, which would let any local client choose its address).
    uvicorn.run(create_app(settings), host=settings.server_host, port=settings.server_port,
                proxy_headers=bool(settings.trusted_proxies), forwarded_allow_ips=list(settings.trusted_proxies),
                access_log=False, log_level=settings.logging_level.lower(), server_header=False)


@main.command()
@click.pass_obj
@handles_errors
def relay(settings: Settings) -> None:
    """Send queued email alone, without the web service, until SIGINT or SIGTERM. For web
    servers run with mail.relay = false, so email has a process (and a core) of its own
    and does not slow redemptions in a spike. Several relays may run: batches are leased."""
    import asyncio
    import signal

    from promo.db import Database
    from promo.logs import configure_logging
    from promo.mail import MailRelay
    from promo.supervisor import Supervised
    from promo.templating import Templates

    configure_logging(settings.logging_format, settings.logging_level)
    with database(settings) as conn:
        migrated(conn)

    async def run() -> None:
        async with Database(settings.database_path, busy_timeout_ms=settings.database_busy_timeout_ms,
                            synchronous=settings.database_synchronous) as db:
            outbox_relay = MailRelay(db, settings.mail, Templates(auto_reload=False), settings.public_url)
            worker = Supervised("mail_relay", outbox_relay.run, stop=outbox_relay.stop)  # restarted if anything escapes
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, worker.ask_to_stop)  # finish the message in hand, then leave
            click.echo(f"relaying queued email to {settings.mail.host}:{settings.mail.port}", err=True)
            worker.start()
            await worker.wait()

    asyncio.run(run())


@main.command("migrate")
@click.pass_obj
@handles_errors
def migrate_command(settings: Settings) -> None:
    """Apply pending schema migrations and load the shipped SKU catalog."""
    with database(settings) as conn:
        applied = migrate(conn)
        with transaction(conn):
            upsert_skus(conn, shipped_catalog())
    click.echo(f"applied {', '.join(applied)}" if applied else "database is up to date")


@main.command()
@click.pass_obj
@handles_errors
def demo(settings: Settings) -> None:
    """Create or refresh the demo offer (open today, 50 codes, the README's product keys)."""
    from promo.demo import DEMO_KEYS, DEMO_SLUG, install_demo

    with database(settings) as conn:
        result = install_demo(migrated(conn), utcnow())
    click.echo(f"{DEMO_SLUG}: open today; {result['codes_added']} code(s) added; product keys: "
               + ", ".join(key for key, _, _ in DEMO_KEYS))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
@handles_errors
def backup(settings: Settings, file: Path) -> None:
    """Consistent online copy of the database (safe while the service runs), verified."""
    from promo.backup import backup_database

    with database(settings) as conn:
        try:
            report = backup_database(migrated(conn), file)
        except (FileExistsError, ValueError) as exc:
            fail(str(exc))
    click.echo(f"backed up to {report.path}: {report.pages} pages, {report.redemptions} redemptions, "
               f"{report.donation_requests} donation requests, {report.audit_events} audit events; integrity, "
               f"the books of {report.campaigns} campaign(s) and the audit chain verified")


@main.group()
def staff() -> None:
    """Staff accounts (admin, marketer, auditor, support)."""


@staff.command("add")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(["admin", "marketer", "auditor", "support"]))
@click.option("--password", envvar="PROMO_STAFF_PASSWORD", prompt=True, hide_input=True, confirmation_prompt=True,
              help="asked for if not given (or PROMO_STAFF_PASSWORD)")
@click.pass_obj
@handles_errors
def staff_add(settings: Settings, email: str, role: str, password: str) -> None:
    """Create a staff account; the first admin is bootstrapped this way."""
    from promo.passwords import hash_password
    from promo.staff import add_staff, check_new_password

    digest = hash_password(check_new_password(password))  # before the transaction: argon2 never holds the write lock
    with database(settings) as conn:
        with transaction(migrated(conn)):
            member = add_staff(conn, email=email, role=role, password_hash=digest, now=utcnow(), actor=CLI_ACTOR)
    click.echo(f"staff account {member.email} ({member.role}) created")


@main.group()
def partners() -> None:
    """Partners that verify nonprofit validation codes (R-V6)."""


@partners.command("add")
@click.argument("name")
@click.pass_obj
@handles_errors
def partners_add(settings: Settings, name: str) -> None:
    """Register a partner and print its API token (shown once; only a hash is kept)."""
    from promo.nonprofit import add_partner

    with database(settings) as conn:
        with transaction(migrated(conn)):
            token = add_partner(conn, name, now=utcnow(), actor=CLI_ACTOR)
    click.echo(token)


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option("--checkpoint", default=None, help="a head saved earlier (SEQ:HASH) to detect truncation")
@click.pass_obj
@handles_errors
def audit_verify(settings: Settings, checkpoint: str | None) -> None:
    """Check the whole hash chain; name the first broken event; exit 1 on any alteration."""
    from promo.audit import Checkpoint, verify_chain

    try:
        saved = Checkpoint.parse(checkpoint) if checkpoint else None
    except ValueError as exc:
        raise InputError.one("checkpoint", str(exc)) from None
    started = time.perf_counter()
    with database(settings) as conn:
        state = verify_chain(migrated(conn), saved)
    seconds = time.perf_counter() - started
    if not state.ok:
        click.echo(f"BROKEN at event {state.first_broken}: {state.problem} "
                   f"({state.events} events verified before it)", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"ok: {state.events} events, head {state.head_seq}:{state.head_hash}"
               + (f", checkpoint {saved.seq} matches" if saved else "") + f" ({seconds:.2f} s)")


@audit.command("checkpoint")
@click.pass_obj
@handles_errors
def audit_checkpoint(settings: Settings) -> None:
    """Print the current head (SEQ:HASH): keep it somewhere else, give it to verify later."""
    from promo.audit import head

    with database(settings) as conn:
        click.echo(str(head(migrated(conn))))


@main.group()
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


@main.command("import-activations")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@handles_errors
def import_activations_command(settings: Settings, file: Path) -> None:
    """Import activation records (CSV: product_key,sku,purchase_country,activation_country,purchased_at,
    activated_at,account_email; a single `country` column means both countries)."""
    with database(settings) as conn:
        count = import_activations(migrated(conn), source=str(file), catalog=load_catalog(conn), now=utcnow())
    click.echo(f"imported {count} activation record(s)")


@main.command("import-codes")
@click.option("--campaign", "slug", required=True)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@handles_errors
def import_codes_command(settings: Settings, slug: str, file: Path) -> None:
    """Import reward codes (CSV: code, optional expires_at); all or nothing."""
    with database(settings) as conn:
        stored = get_campaign(migrated(conn), slug)
        report = import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=str(file),
                              source_name=file.name, now=utcnow())
    click.echo(f"imported {report.imported} code(s) into {slug} (batch {report.batch_id})")


@main.command()
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


@main.command()
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
        result = redeem_sync(migrated(conn), request, utcnow(), mail_domain=settings.mail.message_id_domain)
    emit(result.as_dict())
    sys.exit(EXIT_OK if result.redeemed else EXIT_REFUSED)


if __name__ == "__main__":  # pragma: no cover
    main()
