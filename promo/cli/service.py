"""`promo serve`, `relay`, `migrate`, `demo` and `backup`: running and keeping the service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from promo.backends.store import migrate
from promo.catalog import shipped_catalog, upsert_skus
from promo.cli.common import database, fail, handles_errors, migrated
from promo.config import CONFIG_ENV, Settings, env_name, load_settings
from promo.db import transaction
from promo.timeutil import utcnow

if TYPE_CHECKING:
    from starlette.applications import Starlette


@click.command()
@click.option("--host", default=None, help="override server.host")
@click.option("--port", type=int, default=None, help="override server.port")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="override server.workers (processes: 1 to 64, above 1 on PostgreSQL only)")
@click.pass_obj
@handles_errors
def serve(settings: Settings, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the web service (uvicorn, uvloop + httptools when available)."""
    import uvicorn

    from promo.logs import configure_logging

    overrides = {env_name("server.host"): host or "", env_name("server.port"): str(port or ""),
                 env_name("server.workers"): str(workers or "")}
    overrides = {name: value for name, value in overrides.items() if value}
    config_path = click.get_current_context().find_root().params["config_path"]
    if overrides:  # as PROMO_SERVER_* would, so the settings derived from them follow
        settings = load_settings(config_path, environ={**os.environ, **overrides})
    settings.require_secret_key()
    refuse_workers(settings)
    configure_logging(settings.logging_format, settings.logging_level)
    with database(settings) as conn:
        migrated(conn)
    # X-Forwarded-* are believed only from the configured proxies (uvicorn's own default
    # trusts 127.0.0.1, which would let any local client choose its address).
    options: dict[str, Any] = dict(
        host=settings.server_host, port=settings.server_port, proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies), access_log=False,
        log_level=settings.logging_level.lower(), server_header=False)
    if settings.server_workers == 1:
        from promo.app import create_app

        uvicorn.run(create_app(settings), **options)
        return
    # uvicorn starts each worker by importing the factory in a fresh process, which reads its
    # settings again: from the environment, where the config path and these overrides go.
    os.environ.update(overrides)
    if config_path:
        os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
    uvicorn.run("promo.cli.service:app_from_environment", factory=True, workers=settings.server_workers, **options)


def refuse_workers(settings: Settings) -> None:
    """More than one process needs a store several processes can write to at once, and no
    development mail sink (it binds one port: the second process could not start)."""
    if settings.server_workers == 1:
        return
    if not settings.database_url:
        fail(f"server.workers: {settings.server_workers} processes need PostgreSQL (database.url); SQLite has one "
             "writer, so run 1 (promo serve --workers 1, or PROMO_SERVER_WORKERS=1)")
    if settings.mail.sink:
        fail(f"server.workers: {settings.server_workers} processes cannot share the development mail sink (it binds "
             "one port, mail.sink_port); set mail.sink = false (PROMO_MAIL_SINK=false) or run 1 worker")


def app_from_environment() -> Starlette:
    """The app of one `promo serve --workers N` process (uvicorn's factory): settings from
    PROMO_CONFIG and the PROMO_* environment, as the parent read them."""
    from promo.app import create_app
    from promo.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.logging_format, settings.logging_level)
    return create_app(settings)


@click.command()
@click.pass_obj
@handles_errors
def relay(settings: Settings) -> None:
    """Send queued email alone, without the web service, until SIGINT or SIGTERM. For web
    servers run with mail.relay = false, so email has a process (and a core) of its own
    and does not slow redemptions in a spike. Several relays may run: batches are leased."""
    import asyncio
    import signal

    from promo.backends.configured import open_configured_store
    from promo.email_domains import SENDING_DOMAINS  # noqa: F401  (imported once: each registers its email contexts)
    from promo.logs import configure_logging
    from promo.mail import MailRelay
    from promo.supervisor import Supervised
    from promo.templating import Templates

    configure_logging(settings.logging_format, settings.logging_level)
    with database(settings) as conn:
        migrated(conn)

    async def run() -> None:
        db = await open_configured_store(settings, pool_size=settings.mail.connections + 2)  # lanes, lease, reads
        try:
            outbox_relay = MailRelay(db, settings.mail, Templates(auto_reload=False), settings.public_url)
            worker = Supervised("mail_relay", outbox_relay.run, stop=outbox_relay.stop)  # restarted if anything escapes
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, worker.ask_to_stop)  # finish the message in hand, then leave
            click.echo(f"relaying queued email to {settings.mail.host}:{settings.mail.port}", err=True)
            worker.start()
            await worker.wait()
        finally:
            await db.close()

    asyncio.run(run())


@click.command("migrate")
@click.pass_obj
@handles_errors
def migrate_command(settings: Settings) -> None:
    """Apply pending schema migrations and load the shipped SKU catalog."""
    with database(settings) as conn:
        applied = migrate(conn)
        with transaction(conn):
            upsert_skus(conn, shipped_catalog())
    click.echo(f"applied {', '.join(applied)}" if applied else "database is up to date")


@click.command()
@click.pass_obj
@handles_errors
def demo(settings: Settings) -> None:
    """Create or refresh the demo offer (open today, 50 codes, the README's product keys)."""
    from promo.demo import DEMO_KEYS, DEMO_SLUG, install_demo

    with database(settings) as conn:
        result = install_demo(migrated(conn), utcnow())
    click.echo(f"{DEMO_SLUG}: open today; {result['codes_added']} code(s) added; product keys: "
               + ", ".join(key for key, _, _ in DEMO_KEYS))


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
@handles_errors
def backup(settings: Settings, file: Path) -> None:
    """Consistent online copy of the database (safe while the service runs), verified."""
    from promo.backup import backup_database

    if settings.database_url:  # the backup API and integrity_check are SQLite's own
        fail("database.url: promo backup copies the SQLite file; on PostgreSQL use pg_dump -Fc and pg_restore "
             "(README: PostgreSQL)")
    with database(settings) as conn:
        try:
            report = backup_database(migrated(conn), file)
        except (FileExistsError, ValueError) as exc:
            fail(str(exc))
    click.echo(f"backed up to {report.path}: {report.pages} pages, {report.redemptions} redemptions, "
               f"{report.donation_requests} donation requests, {report.audit_events} audit events; integrity, "
               f"the books of {report.campaigns} campaign(s) and the audit chain verified")
