"""A worker process for the multi-process race tests (importable under 'spawn')."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from promo.backends import pg_connection
from promo.backends.postgresql import in_transaction
from promo.db import connect
from promo.errors import InputError
from promo.redemption import RedeemRequest, redeem_sync, redeem_unit


def run(store: str, start_at: float, jobs: list[tuple[str, str]]) -> list[str]:
    """Wait for the common start, then redeem each (account, product key) on the store (a
    SQLite file's path or a PostgreSQL URL) through a connection of this process's own.
    Returns the outcomes."""
    postgresql = store.startswith(("postgresql://", "postgres://"))
    conn: Any = pg_connection.connect(store) if postgresql else connect(store, busy_timeout_ms=30000)
    now = datetime(2013, 9, 1, 12, tzinfo=UTC)
    while time.time() < start_at:
        time.sleep(0.001)
    outcomes = []
    for account, key in jobs:
        try:
            request = RedeemRequest("office365-xbox-gold-2013", account, key, terms_accepted=True).normalized()
            # On PostgreSQL as the service writes: READ COMMITTED, rerun on a serialization failure.
            result = in_transaction(conn, redeem_unit, (request, now), {}) if postgresql else redeem_sync(conn, request, now)
            outcomes.append("redeemed" if result.redeemed else ",".join(result.decision.rules))
        except InputError as exc:  # pragma: no cover - would be a test bug
            outcomes.append(f"input:{exc}")
    conn.close()
    return outcomes
