"""The `promo` command. Exit codes: 0 eligible / redeemed / done, 1 refused, 2 bad input.

Commands run the same storage and rule functions as the web service, on a synchronous
connection: SQLite's write lock (BEGIN IMMEDIATE) keeps them safe beside a running server.
One module per group of commands: service.py (serve, relay, migrate, demo, backup),
campaigns.py (campaign files and imports), accounts.py (staff, partners), audit.py and
customers.py (evaluate, redeem), db.py (copy between stores); common.py holds what they share.

A command that needs the web app, the mail relay, argon2 or the nonprofit store imports it
inside its function: importing them all at start-up took `import promo.cli` from about 1.5 s
to about 4 s on the shared 2-core machine, for every `promo` run.
"""

from __future__ import annotations

import click

from promo.cli.accounts import partners, staff
from promo.cli.audit import audit
from promo.cli.campaigns import campaigns, import_activations_command, import_codes_command
from promo.cli.common import fail
from promo.cli.customers import evaluate, redeem
from promo.cli.db import db
from promo.cli.service import backup, demo, migrate_command, relay, serve
from promo.config import load_settings
from promo.errors import ConfigError
from promo.outbox import use_message_id_domain


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
    use_message_id_domain(ctx.obj.mail.message_id_domain)  # the emails a command queues (`promo redeem`)


for command in (serve, relay, migrate_command, demo, backup, staff, partners, audit, campaigns,
                import_activations_command, import_codes_command, evaluate, redeem, db):
    main.add_command(command)
