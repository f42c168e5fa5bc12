"""The store the settings name (database.url), opened for `promo serve` and `promo relay`."""

from __future__ import annotations

import sqlite3

from promo.backends.store import Store, make_store, open_store
from promo.config import Settings
from promo.db import Database
from promo.logs import get_logger

log = get_logger("promo.db")


async def open_configured_store(settings: Settings, *, pool_size: int | None = None) -> Store:
    """SQLite that cannot be opened now is retried on use (/readyz says not ready meanwhile),
    as before; a PostgreSQL that cannot be reached stops start-up with StoreUnavailable, whose
    message names database.url (and never its password). `pool_size`: PostgreSQL's connections,
    database.pool_size unless given (a `promo relay` needs one per SMTP lane and two more)."""
    url, base = settings.store_url, settings.database_path.parent
    db = make_store(url, base=base, busy_timeout_ms=settings.database_busy_timeout_ms,
                    synchronous=settings.database_synchronous)
    if not isinstance(db, Database):
        return await open_store(url, base=base, pool_size=pool_size or settings.database_pool_size)
    try:
        await db.open()
    except (sqlite3.Error, OSError) as exc:
        log.error("database.open_failed", error=str(exc), path=str(settings.database_path))
    return db
