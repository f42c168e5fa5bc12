"""Supervised background workers: restarted with capped exponential backoff whenever they
stop by themselves, their state always known, stopped cleanly on request."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog

from promo.supervisor import Supervised


class Worker:
    """Raises the given errors on its first runs, then runs until asked to stop."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.starts: list[float] = []
        self.stopping = asyncio.Event()
        self.finished = False

    async def run(self) -> None:
        self.starts.append(time.monotonic())
        await asyncio.sleep(0)
        if self.errors:
            raise self.errors.pop(0)
        await self.stopping.wait()
        self.finished = True  # it left by itself, after finishing what it had in hand

    def stop(self) -> None:
        self.stopping.set()


async def until(condition, timeout: float = 5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_worker_that_raises_is_restarted_with_growing_capped_delays() -> None:
    worker = Worker(*(RuntimeError(f"secret {n}") for n in range(4)))
    supervised = Supervised("relay", worker.run, stop=worker.stop, first_delay=0.1, max_delay=0.4)
    with structlog.testing.capture_logs() as logs:
        supervised.start()
        await until(lambda: supervised.restarts == 4 and supervised.up)
    gaps = [later - earlier for earlier, later in zip(worker.starts, worker.starts[1:], strict=False)]
    assert len(gaps) == 4
    for gap, delay in zip(gaps, (0.1, 0.2, 0.4, 0.4), strict=True):  # doubling, capped at max_delay (not 0.8)
        assert delay <= gap < delay + 0.35
    assert (supervised.state, supervised.last_error) == ("up", "RuntimeError")
    stopped = [entry for entry in logs if entry["event"] == "worker.stopped"]
    assert [(e["log_level"], e["error"], e["restart_in_seconds"]) for e in stopped] == [
        ("error", "RuntimeError", 0.1), ("error", "RuntimeError", 0.2), ("error", "RuntimeError", 0.4),
        ("error", "RuntimeError", 0.4)]
    assert all(e["where"].startswith("test_supervisor.py:") and e["where"].endswith(" in run") for e in stopped)
    assert "secret" not in repr(logs)  # the type and place only: an error's text may hold a secret
    await supervised.stop()
    assert worker.finished and supervised.state == "stopped" and supervised.restarts == 4


async def test_it_is_down_while_it_waits_to_be_restarted() -> None:
    worker = Worker(ValueError("x"))
    supervised = Supervised("relay", worker.run, stop=worker.stop, first_delay=0.3)
    assert supervised.state == "stopped"  # not started yet
    supervised.start()
    await until(lambda: len(worker.starts) == 1 and not supervised.up)
    assert (supervised.state, supervised.last_error, supervised.restarts) == ("down", "ValueError", 0)
    await until(lambda: supervised.up)
    assert (supervised.state, supervised.restarts) == ("up", 1)
    await supervised.stop()


async def test_a_worker_that_returns_by_itself_is_restarted_too() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    supervised = Supervised("once", once, first_delay=0.01, max_delay=0.01)
    supervised.start()
    await until(lambda: supervised.restarts >= 2)
    assert supervised.last_error == "returned"
    await supervised.stop()
    assert supervised.state == "stopped"


async def test_stop_during_the_backoff_does_not_wait_for_it() -> None:
    worker = Worker(RuntimeError("x"))
    supervised = Supervised("relay", worker.run, stop=worker.stop, first_delay=30)
    supervised.start()
    await until(lambda: supervised.state == "down")
    started = time.monotonic()
    await supervised.stop()
    assert time.monotonic() - started < 1 and len(worker.starts) == 1 and supervised.state == "stopped"


async def test_a_worker_that_does_not_finish_in_time_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    supervised = Supervised("stubborn", stubborn)  # no way to ask it to stop
    supervised.start()
    await asyncio.sleep(0.01)
    await supervised.stop(timeout=0.05)
    assert cancelled.is_set() and supervised.state == "stopped" and supervised.restarts == 0


async def test_a_cancellation_is_never_taken_for_a_failure() -> None:
    worker = Worker()
    supervised = Supervised("relay", worker.run, first_delay=0.01)
    supervised.start()
    await until(lambda: supervised.up and worker.starts)
    supervised._task.cancel()  # type: ignore[union-attr]  # e.g. the event loop shutting down
    with pytest.raises(asyncio.CancelledError):
        await supervised.wait()
    assert supervised.restarts == 0 and supervised.last_error is None and not supervised.up


async def test_a_run_that_lasted_starts_the_backoff_over() -> None:
    lengths = iter([0, 0, 0.3, None])  # seconds each run lasts before it fails; None: it keeps running

    async def run() -> None:
        length = next(lengths)
        if length is None:
            await asyncio.Event().wait()
        await asyncio.sleep(length)
        raise RuntimeError("x")

    supervised = Supervised("relay", run, first_delay=0.05, max_delay=0.2)
    with structlog.testing.capture_logs() as logs:
        supervised.start()
        await until(lambda: supervised.restarts == 3)
    delays = [e["restart_in_seconds"] for e in logs if e["event"] == "worker.stopped"]
    assert delays == [0.05, 0.1, 0.05]  # the third run lasted longer than max_delay: healthy, so 0.05 again
    await supervised.stop(timeout=0.1)
