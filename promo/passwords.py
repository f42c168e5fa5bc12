"""Password hashing and checking (argon2id), off the event loop and outside every transaction.

argon2 is slow on purpose (50-150 ms and 64 MiB per call on this machine). Run inside the
single writer's transaction, 50 wrong staff passwords held every redemption up for up to
17 s (issue 14). So hashing runs only here: in a small pool of threads (argon2-cffi releases
the GIL), with a bound on how many calls may be in hand at once, and on Linux on one core
at a lower priority, so anonymous sign-in attempts take neither the write lock nor the
processor from redemptions (bench/README.md, "Failed staff sign-ins during redemptions").
Callers read what they need before and write the outcome after, each in a short
transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

WORKERS = 1  # argon2 runs 4 lanes in threads of its own: one call already keeps 2 cores busy
MAX_IN_HAND = 64  # calls running or waiting; more are refused at once (Busy), not queued for minutes
NICENESS = 10  # the pool's CPU weight is a tenth of the event loop's

_hasher = PasswordHasher()
# Checking a password against this when the account does not exist costs the same time as a
# real check, so timing does not tell which addresses have staff accounts.
DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Busy(Exception):
    """More password checks are in hand than MAX_IN_HAND: refused without hashing."""


def _yield_the_cpu() -> None:
    # Linux only (elsewhere the pool runs as any thread): this pool thread, and the threads
    # argon2 starts from it (they inherit both), run on one core of those the process may
    # use, so the event loop always has another, and at a lower priority, so the loop wins
    # when it shares that core too. Not SCHED_IDLE: on a machine busy with other work that
    # starved sign-ins for minutes. pid 0 is the calling thread.
    if sys.platform != "linux":
        return
    with contextlib.suppress(AttributeError, OSError):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:
            os.sched_setaffinity(0, {cores[-1]})
        os.setpriority(os.PRIO_PROCESS, 0, NICENESS)


_pool: ThreadPoolExecutor | None = None
_in_hand = 0


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="argon2", initializer=_yield_the_cpu)
    return _pool


async def _run(fn: Callable[..., T], *args: object) -> T:
    global _in_hand
    if _in_hand >= MAX_IN_HAND:
        raise Busy
    _in_hand += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_executor(), fn, *args)
    finally:
        _in_hand -= 1


def hash_password(password: str) -> str:
    """argon2id hash (synchronous: for the command line, which has no event loop to keep free;
    call it before the transaction, never inside)."""
    return _hasher.hash(password)


def matches(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches `stored_hash`; None (no such account) is checked against
    DUMMY_HASH, so it costs the same, and is never a match."""
    try:
        _hasher.verify(stored_hash or DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


async def hash_off_loop(password: str) -> str:
    """hash_password in the bounded pool. Raises Busy when too many calls are in hand."""
    return await _run(hash_password, password)


async def matches_off_loop(stored_hash: str | None, password: str) -> bool:
    """matches() in the bounded pool. Raises Busy when too many calls are in hand."""
    return await _run(matches, stored_hash, password)
