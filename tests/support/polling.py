"""Polls with a deadline, for tests that wait on another process, thread or task: the condition
is checked until it holds, and the test fails (naming what it waited for) when the time is up.
Never a timing assertion: the deadline only turns a hang into a failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], seconds: float = 30.0, what: str = "the condition",
               every: float = 0.02) -> float:
    """Poll condition() until it is true; how long that took (fails after `seconds`)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        time.sleep(every)
    return time.monotonic() - started


async def await_until(condition: Callable[[], object], seconds: float = 30.0, what: str = "the condition",
                      every: float = 0.02) -> None:
    """As wait_until, letting the event loop run between checks."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(every)
