"""`promo staff add` and `promo partners add`: accounts made from the command line."""

from __future__ import annotations

import click

from promo.cli.common import CLI_ACTOR, database, handles_errors, migrated
from promo.config import Settings
from promo.db import transaction
from promo.timeutil import utcnow


@click.group()
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


@click.group()
def partners() -> None:
    """Partners that verify nonprofit validation codes (R-V6)."""


@partners.command("add")
@click.argument("name")
@click.pass_obj
@handles_errors
def partners_add(settings: Settings, name: str) -> None:
    """Register a partner and print its API token (shown once; only a hash is kept)."""
    from promo.nonprofit.validation_codes import add_partner

    with database(settings) as conn:
        with transaction(migrated(conn)):
            token = add_partner(conn, name, now=utcnow(), actor=CLI_ACTOR)
    click.echo(token)
