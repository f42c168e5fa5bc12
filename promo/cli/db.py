"""`promo db copy`: move a whole deployment between SQLite and PostgreSQL (issue 17, item 7)."""

from __future__ import annotations

import click

from promo.cli.common import EXIT_REFUSED, fail, handles_errors
from promo.config import Settings


@click.group("db")
def db() -> None:
    """The store itself: copy a deployment from one database to another."""


@db.command("copy")
@click.option("--from", "source", required=True, metavar="URL", help="sqlite:///var/promo.sqlite3 or postgresql://user@host/db")
@click.option("--to", "target", required=True, metavar="URL", help="an empty database (migrated first if it holds no schema)")
@click.option("--batch-rows", default=10_000, show_default=True, help="rows per transaction on the target")
@click.pass_obj
@handles_errors
def db_copy(settings: Settings, source: str, target: str, batch_rows: int) -> None:
    """Copy every row into an empty database (ids, audit chain and all), then verify the
    audit chain there: its head must be the source's. sqlite:/// paths are relative to the
    config file's folder."""
    import psycopg  # imported here: `promo` starts without the PostgreSQL driver (promo/cli/__init__.py)

    from promo.backends.copy import CopyRefused, copy_database
    from promo.backends.store import StoreUrlError

    try:
        report = copy_database(source, target, base=settings.database_path.parent, batch_rows=batch_rows,
                               progress=lambda line: click.echo(line))
    except StoreUrlError as exc:
        fail(f"--from/--to: {exc}")
    except CopyRefused as exc:
        fail(str(exc), EXIT_REFUSED)
    except psycopg.OperationalError as exc:
        fail(f"PostgreSQL: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    else:
        click.echo(f"copied {report.rows} rows in {report.tables} tables; audit head {report.head}")
