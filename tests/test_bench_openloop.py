"""bench/openloop.py counts each latency from when the request was due (issue 18, as wrk2 does):
a server that stalls shows it in every request that fell due during the stall, not only in the
few that were in flight; requests due before a stop are still sent and counted; the schedule is
exactly the rate, over several worker processes too. Only lower bounds are asserted: a slow
machine makes latencies longer, never shorter."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from bench import openloop


class StallingServer:
    """HTTP/1.1 keep-alive on 127.0.0.1 that answers 200 at once, except that from the
    `stall_after`-th request on it holds every answer until `release` is set."""

    def __init__(self, stall_after: int, stall_s: float | None):
        self.stall_after, self.stall_s = stall_after, stall_s
        self.received = 0
        self.stalled_at: float | None = None
        self.release = threading.Event()
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                self.received += 1
                if self.received == self.stall_after:
                    self.stalled_at = time.monotonic()
                    if self.stall_s is not None:
                        self.loop.call_later(self.stall_s, self.release.set)
                if self.received >= self.stall_after:
                    while not self.release.is_set():
                        await asyncio.sleep(0.005)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def __enter__(self) -> str:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self.handle, "127.0.0.1", 0), self.loop).result(5)
        self.server = server
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()


@pytest.fixture
def half_second_stall() -> Iterator[tuple[StallingServer, str]]:
    server = StallingServer(stall_after=100, stall_s=0.5)
    with server as url:
        yield server, url


@pytest.mark.parametrize("processes", [1, 2])
def test_a_stall_shows_in_every_request_due_during_it(half_second_stall: tuple[StallingServer, str], processes: int) -> None:
    server, url = half_second_stall
    result = openloop.run([url], "/hello", rate=200, seconds=3, connections=4, processes=processes)
    assert server.stalled_at is not None and server.release.is_set()
    # Requests 0..600 fall due in 3 s at 200/s: every one sent and answered, none dropped.
    assert sorted(round(d * 200) for d in result.due) == list(range(601))
    assert set(result.status) == {200}
    # About 100 requests fall due during the 0.5 s stall; the first half of them wait at least
    # 0.25 s. Counted from when each was sent, only the 4 in flight would (a closed loop's view).
    assert sum(latency >= 0.25 for latency in result.latency) >= 40
    assert max(result.latency) >= 0.45
    figures = result.summary()
    assert figures["requests"] == 601 and figures["errors"] == 0
    assert figures["p99_ms"] >= 250 and figures["p999_ms"] >= figures["p99_ms"] >= figures["p50_ms"]


def test_a_stop_still_counts_every_request_already_due() -> None:
    server = StallingServer(stall_after=20, stall_s=None)  # held until released
    with server as url:
        load = openloop.start([url], "/hello", rate=100, seconds=60, connections=2)
        deadline = time.monotonic() + 30
        while server.stalled_at is None or time.monotonic() < server.stalled_at + 0.5:
            assert time.monotonic() < deadline, "the generator never reached the stall"
            time.sleep(0.01)
        stopped = time.monotonic()
        load.stop()
        server.release.set()
        result = load.wait(timeout=30)
    due_by_stop = int((stopped - load.t0) * 100)
    assert len(result.due) >= due_by_stop  # the backlog behind the stall was sent, not dropped
    assert max(result.due) <= stopped - load.t0 + 0.1  # and nothing due after the stop
    assert max(result.latency) >= 0.5 and set(result.status) == {200}
    assert not result.summary()["ran_out_of_lines"]
