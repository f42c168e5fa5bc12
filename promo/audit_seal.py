"""The audit sealer (issue 18): on PostgreSQL, chains committed audit events every 200 ms.

Each process that serves runs one, supervised like the mail relay (promo/supervisor.py) and
reported by /readyz as "audit_sealer". Several processes may run one each: a round takes the
chain's advisory lock with a *try*, so one sealer works at a time and the others skip that
round instead of queueing (promo/audit.py, `seal`). A round that sealed a full batch is
followed at once by the next, so a backlog drains at the sealer's speed, not 2,000 per tick.
SQLite seals at append and runs no sealer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from promo.audit import SEAL_BATCH, seal
from promo.db import STORE_ERRORS, is_unavailable
from promo.logs import get_logger

if TYPE_CHECKING:
    from promo.backends.store import Store

log = get_logger("promo.audit_seal")

INTERVAL_S = 0.2  # the normal delay between an event's COMMIT and its place in the chain


class AuditSealer:
    def __init__(self, db: Store, *, interval_s: float = INTERVAL_S):
        self.db, self.interval_s = db, interval_s
        self.sealed = 0  # events this sealer has chained (observability, bench/audit_chain.py)
        self.rounds = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Seal until stop(). A database that is away is waited out here (the next tick tries
        again); anything else escapes, for the supervisor to log and restart."""
        while not self._stopping.is_set():
            try:
                sealed = await self.db.write(seal)
            except STORE_ERRORS as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("audit.sealer_waiting", error=type(exc).__name__)
                sealed = 0
            self.sealed += sealed
            self.rounds += 1
            if sealed < SEAL_BATCH:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval_s):
                        await self._stopping.wait()
