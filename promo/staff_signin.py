"""A staff sign-in, in three steps so that no transaction is open while argon2 runs:
read the limits and the account (a point read), check the password in the bounded pool
(promo/passwords.py), then write the outcome in a short grouped write.

Two things the single transaction used to give for free are kept here, per process:
- attempts on one address run one after another, so the lockout after LOCK_AFTER failures
  still counts each one (50 concurrent guesses on one account get 5 checks, not 50);
- attempts from one IP whose outcome is not written yet count against the IP limit, so a
  burst gets no more password checks than the limit allows.
Across several server processes, the write re-reads the account, so a lock set by another
process stops a success; the per-IP count may then let each process check up to the limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from promo import passwords
from promo.db import Database
from promo.staff import SigninState, StaffSession, record_signin, signin_state


class StaffSignins:
    """The sign-ins in hand in this process (one per app: `app.state.staff_signins`)."""

    def __init__(self) -> None:
        self._addresses: dict[str, tuple[asyncio.Lock, int]] = {}  # address -> (its lock, attempts holding or waiting)
        self._from_ip: Counter[str] = Counter()

    @asynccontextmanager
    async def _one_at_a_time(self, address: str) -> AsyncIterator[None]:
        lock, users = self._addresses.get(address, (asyncio.Lock(), 0))
        self._addresses[address] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._addresses[address]
            if users == 1:
                del self._addresses[address]
            else:
                self._addresses[address] = (lock, users - 1)

    async def sign_in(self, db: Database, *, email: str, password: str, now: datetime,
                      ip: str | None) -> tuple[str, StaffSession] | str:
        """(raw session id, session), or why not: "invalid" (wrong address or password),
        "locked", "too_many" (this IP), or "busy" (too many password checks in hand).
        `email` is already normalised (identifiers.normalize_email, at the form)."""
        address = email
        async with self._one_at_a_time(address):
            if ip:
                self._from_ip[ip] += 1
            try:
                return await self._attempt(db, address, password or "", now, ip)
            finally:
                if ip:
                    self._from_ip[ip] -= 1
                    if not self._from_ip[ip]:
                        del self._from_ip[ip]

    async def _attempt(self, db: Database, address: str, password: str, now: datetime,
                       ip: str | None) -> tuple[str, StaffSession] | str:
        ahead = self._from_ip[ip] - 1 if ip else 0
        checked: SigninState = await db.lookup(signin_state, address=address, ip=ip, now=now, in_flight=ahead)
        outcome = checked.refusal
        if outcome is None:  # unknown addresses are checked too (against a dummy hash): same time
            try:
                outcome = "ok" if await passwords.matches_off_loop(checked.password_hash, password) else "invalid"
            except passwords.Busy:
                outcome = "busy"
        return await db.write_grouped(record_signin, address=address, ip=ip, now=now, checked=checked, outcome=outcome)
