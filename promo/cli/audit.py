"""`promo audit verify` and `promo audit checkpoint`: the tamper-evident audit log."""

from __future__ import annotations

import sys
import time

import click

from promo.cli.common import EXIT_REFUSED, database, handles_errors, migrated
from promo.config import Settings
from promo.errors import InputError


@click.group()
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
