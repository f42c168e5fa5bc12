"""Background workers that must keep running (the outbox relay; later others). A Supervised
runs its worker as a task and, whenever the worker stops by itself (an exception escaped,
or it returned without being asked to), logs it and starts it again after an exponential
backoff (capped), so one unforeseen error never ends the work for good. Its state (up or
down, restarts, the last error's type) is what /readyz and /metrics report."""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable

from promo.logs import get_logger

log = get_logger("promo.supervisor")


class Supervised:
    """`work()` makes a fresh run of the worker (a coroutine) each time; `stop()`, when given,
    asks a running worker to finish what it has in hand and return. A run that lasted at
    least `max_delay` seconds counts as healthy: the next failure waits `first_delay` again."""

    def __init__(self, name: str, work: Callable[[], Awaitable[None]], *, stop: Callable[[], None] | None = None,
                 first_delay: float = 1.0, max_delay: float = 60.0):
        self.name = name
        self._work, self._ask_to_stop = work, stop
        self.first_delay, self.max_delay = first_delay, max_delay
        self.up = False
        self.restarts = 0
        self.last_error: str | None = None  # the type of what stopped it last (never its text: it may hold a secret)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        if self.up:
            return "up"
        return "stopped" if self._stopping.is_set() or self._task is None else "down"

    def start(self) -> None:
        self.up = True  # from now on: its first run is only waiting for a turn of the loop
        self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            self.up = True
            try:
                await self._work()
                error, where = "returned", ""
            except Exception as exc:  # CancelledError, KeyboardInterrupt and SystemExit pass through
                error, where = type(exc).__name__, _where(exc)
            finally:
                self.up = False
            if self._stopping.is_set():
                break
            failures = 1 if time.monotonic() - started >= self.max_delay else failures + 1
            delay = min(self.first_delay * 2 ** (failures - 1), self.max_delay)
            self.last_error = error
            log.error("worker.stopped", worker=self.name, error=error, where=where, restart_in_seconds=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            if not self._stopping.is_set():
                self.restarts += 1
                log.warning("worker.restarted", worker=self.name, restarts=self.restarts)

    def ask_to_stop(self) -> None:
        """Stop restarting, and ask the running worker to finish (safe in a signal handler)."""
        self._stopping.set()
        if self._ask_to_stop is not None:
            self._ask_to_stop()

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self, timeout: float = 5.0) -> None:
        """ask_to_stop(), then wait for the worker; one that does not finish in time is cancelled."""
        self.ask_to_stop()
        if self._task is None:
            return
        _done, pending = await asyncio.wait([self._task], timeout=timeout)
        if pending:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _where(exc: BaseException) -> str:
    """Where it was raised (file:line in function): enough to find the bug, no data."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
