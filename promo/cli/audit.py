"""`promo audit verify` and `promo audit checkpoint`: the tamper-evident audit log.

On PostgreSQL events join the chain a moment after they commit (promo/audit.py): both
commands seal what has committed first, so what they check and print includes it."""

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
@click.option("--no-seal", is_flag=True, help="check what the sealer has sealed, without sealing first; events "
              "left unsealed longer than 5 s (no sealer at work) fail the check, by row id")
@click.pass_obj
@handles_errors
def audit_verify(settings: Settings, checkpoint: str | None, no_seal: bool) -> None:
    """Check the whole hash chain; name the first broken event; exit 1 on any alteration, or on
    events left out of the chain."""
    from promo.audit import OVERDUE, OVERDUE_LISTED, Checkpoint, seal_pending, unsealed, verify_chain
    from promo.timeutil import utcnow

    try:
        saved = Checkpoint.parse(checkpoint) if checkpoint else None
    except ValueError as exc:
        raise InputError.one("checkpoint", str(exc)) from None
    started = time.perf_counter()
    with database(settings) as conn:
        conn = migrated(conn)
        if not no_seal:
            seal_pending(conn)
        state = verify_chain(conn, saved)
        waiting = unsealed(conn, utcnow())
    seconds = time.perf_counter() - started
    if not state.ok:
        click.echo(f"BROKEN at event {state.first_broken}: {state.problem} "
                   f"({state.events} events verified before it)", err=True)
        sys.exit(EXIT_REFUSED)
    if waiting.overdue:
        shown = ", ".join(str(seq) for seq in waiting.overdue[:20]) + (" …" if len(waiting.overdue) > 20 else "")
        click.echo(f"UNSEALED: {waiting.count} events are not in the chain, of which {len(waiting.overdue)}"
                   f"{'+' if len(waiting.overdue) == OVERDUE_LISTED else ''} were appended more than {OVERDUE.total_seconds():g} s ago "
                   f"(is a sealer running?): row ids {shown}", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"ok: {state.events} events, head {state.head_seq}:{state.head_hash}"
               + (f", checkpoint {saved.seq} matches" if saved else "")
               + (f", {waiting.count} appended in the last {OVERDUE.total_seconds():g} s not sealed yet" if waiting.count else "")
               + f" ({seconds:.2f} s)")


@audit.command("checkpoint")
@click.pass_obj
@handles_errors
def audit_checkpoint(settings: Settings) -> None:
    """Print the current head (SEQ:HASH) after sealing what has committed: keep it somewhere
    else, give it to verify later."""
    from promo.audit import head, seal_pending

    with database(settings) as conn:
        conn = migrated(conn)
        seal_pending(conn)
        click.echo(str(head(conn)))
