"""An open-loop load generator (issue 18): requests sent at a fixed rate, whatever the answers'
speed, each latency counted from when the request was *due*, as wrk2 does. A closed-loop
client (wrk) waits for an answer before it sends the next request, so a server that stalls
for a second delays only the requests in flight: the stall barely shows in its percentiles
(coordinated omission). Here request i is due at t0 + i / rate; if every connection is busy
when it falls due, the wait for a free one counts too.

    .venv/bin/python bench/openloop.py --url http://127.0.0.1:8000 --path /hello --rate 1000 --seconds 5

Raw HTTP/1.1 on keep-alive connections (asyncio streams, uvloop when installed), spread
round-robin over the targets (several `promo serve` instances). Several worker processes when
one core cannot keep up: worker k of P sends requests k, k + P, k + 2P... on the same shared
clock (CLOCK_MONOTONIC is system-wide), so the merged schedule is exactly `rate`. "lag" is how
late each request left the generator: with a busy server it is the wait for a free connection;
with an idle server and a large lag, the generator itself could not keep up.

Each request POSTs a line of a file ("cookie csrf product_key country", bench/post.lua's
format: a redemption with its own session and key) or, without a file, a fixed body. It stops
by itself after --seconds, or earlier on SIGTERM (Load.stop()): requests already due are still
sent and counted, so a backlog is never dropped from the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

START_S = 0.05  # request 0 is due this long after every worker said it is ready
IDLE_RECONNECT_S = 4.0  # uvicorn closes a connection idle for 5 s: never send on one that old
PER_PROCESS_RATE = 2500  # requests/s one worker sends comfortably on this machine's cores


# --- the worker: one process, one event loop ---------------------------------------------

def request_bytes(host: str, path: str, line: str | None, n: int) -> bytes:
    if line is None:
        body, cookie = b"x=1", b""
    else:
        session, csrf, key, country = line.split()
        # The idempotency key names the product key, as post.lua's does (never a replay).
        body = (f"csrf={csrf}&product_key={key}&country={country}&accept_terms=yes"
                f"&idempotency_key={key}-ol-{n}").encode()
        cookie = f"Cookie: promo_session={session}\r\n".encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode() + cookie
            + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server closes the connection), the body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked, close = 0, False, lines[0].startswith(b"HTTP/1.0")
    for header in lines[1:]:
        name, _, value = header.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


async def work(cfg: dict[str, Any]) -> dict[str, list[float]]:
    t0, rate, processes, me = cfg["t0"], cfg["rate"], cfg["processes"], cfg["index"]
    lines: list[str] | None = None
    if cfg["lines"]:
        with open(cfg["lines"], encoding="ascii") as source:
            lines = source.read().splitlines()[cfg["start_line"]:cfg["start_line"] + cfg["count"]]
    available = len(lines) if lines is not None else math.inf
    state = {"next": 0, "end": float(cfg["seconds"])}  # end: no request due after it is sent
    out: dict[str, list[float]] = {"due": [], "latency": [], "status": [], "lag": []}
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: state.update(end=min(state["end"], time.monotonic() - t0)))
    targets = cfg["targets"]

    async def connection(c: int) -> None:
        host, port = targets[(me + processes * c) % len(targets)]
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        last_used = 0.0
        while True:
            i = me + processes * state["next"]
            due = i / rate
            if due > state["end"] or i >= available:
                break
            state["next"] += 1
            delay = t0 + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                if due > state["end"]:  # stopped while this one was not yet due
                    break
            sent = time.monotonic()
            if writer is not None and sent - last_used > IDLE_RECONNECT_S:
                writer.close()
                writer = None
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(request_bytes(f"{host}:{port}", cfg["path"], lines[i] if lines is not None else None, i))
                status, close = await asyncio.wait_for(read_response(reader), cfg["timeout"])
            except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError,
                    IndexError):
                status, close = 0, True  # an error, counted with its latency
            done = last_used = time.monotonic()
            out["due"].append(due)
            out["latency"].append(done - t0 - due)
            out["status"].append(status)
            out["lag"].append(sent - t0 - due)
            if close and writer is not None:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection(c) for c in range(cfg["connections"])))
    out["ran_out"] = [float(state["next"] * processes + me >= available)]
    return out


def worker_main(raw: str) -> None:
    """Says "ready" once started, reads the shared clock's t0 from stdin, sends, prints JSON."""
    cfg = json.loads(raw)
    try:
        import uvloop
        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    print("ready", flush=True)
    cfg["t0"] = float(sys.stdin.readline())
    json.dump(runner(work(cfg)), sys.stdout)


# --- the controller ------------------------------------------------------------------------

def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    rate: float
    t0: float  # time.monotonic() at which request 0 was due
    due: list[float] = field(default_factory=list)  # seconds after t0
    latency: list[float] = field(default_factory=list)  # seconds, from due to answer
    status: list[int] = field(default_factory=list)  # 0: no answer (refused, reset, timed out)
    lag: list[float] = field(default_factory=list)
    ran_out: bool = False

    def summary(self, since: float = -math.inf, until: float = math.inf, ok: tuple[int, ...] = (200, 303)) -> dict[str, Any]:
        """Figures for the requests due in [since, until) (seconds after t0; default: all)."""
        picked = [j for j, due in enumerate(self.due) if since <= due < until]
        if not picked:
            return {"requests": 0}
        ms = sorted(self.latency[j] * 1000 for j in picked)
        lags = sorted(self.lag[j] * 1000 for j in picked)
        statuses: dict[str, int] = {}
        for j in picked:
            statuses[str(self.status[j])] = statuses.get(str(self.status[j]), 0) + 1
        return {
            "requests": len(picked), "offered_per_s": round(self.rate, 1),
            "completed_per_s": self.completed_per_s(since, until, ok),
            "errors": sum(n for status, n in statuses.items() if int(status) not in ok), "statuses": statuses,
            "p50_ms": round(percentile(ms, 50), 2), "p99_ms": round(percentile(ms, 99), 2),
            "p999_ms": round(percentile(ms, 99.9), 2), "max_ms": round(ms[-1], 2),
            "generator_lag_p99_ms": round(percentile(lags, 99), 2), "ran_out_of_lines": self.ran_out,
        }


    def completed_per_s(self, since: float, until: float, ok: tuple[int, ...] = (200, 303)) -> float | None:
        """Successful answers that arrived in [since, until), per second (whatever their due time)."""
        if not self.due:
            return None
        since, until = max(since, 0.0), min(until, max(d + latency for d, latency in zip(self.due, self.latency, strict=True)))
        if until <= since:
            return None
        done = sum(1 for d, latency, status in zip(self.due, self.latency, self.status, strict=True)
                   if status in ok and since <= d + latency < until)
        return round(done / (until - since), 1)


@dataclass
class Load:
    """A running open-loop load (start()); wait() for its Result, stop() to end it early."""
    rate: float
    t0: float
    processes: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> Result:
        result = Result(self.rate, self.t0)
        for process in self.processes:
            process.stdin = None  # closed in start()
            out, err = process.communicate(timeout=timeout)
            if process.returncode != 0:
                raise RuntimeError(f"open-loop worker failed: {err.decode()[-2000:]}")
            part = json.loads(out)
            result.due += part["due"]
            result.latency += part["latency"]
            result.status += [int(s) for s in part["status"]]
            result.lag += part["lag"]
            result.ran_out = result.ran_out or bool(part["ran_out"][0])
        return result


def start(urls: list[str], path: str, *, rate: float, seconds: float, connections: int = 64,
          lines: Path | None = None, start_line: int = 0, count: int = 0, processes: int | None = None,
          timeout: float = 30.0) -> Load:
    """Start sending: `rate` requests/s for `seconds`, over `connections` keep-alive connections
    spread over `urls`; with `lines`, request i posts line start_line + i (at most `count`)."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("the rate and the length must be positive")
    processes = processes or max(1, math.ceil(rate / PER_PROCESS_RATE))
    processes = min(processes, connections)
    targets = [(urlsplit(u).hostname, urlsplit(u).port or 80) for u in urls]
    spawned = []
    for k in range(processes):
        cfg = {"rate": rate, "processes": processes, "index": k, "seconds": seconds, "targets": targets,
               "path": path, "lines": str(lines) if lines else None, "start_line": start_line, "count": count,
               "connections": connections // processes + (1 if k < connections % processes else 0), "timeout": timeout}
        spawned.append(subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(cfg)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for process in spawned:  # the clock starts once every worker has started (not on a guess)
        assert process.stdout is not None
        if process.stdout.readline() != b"ready\n":
            for other in spawned:
                other.kill()
            raise RuntimeError(f"open-loop worker did not start: {process.communicate()[1].decode()[-2000:]}")
    t0 = time.monotonic() + START_S
    for process in spawned:
        assert process.stdin is not None
        process.stdin.write(f"{t0!r}\n".encode())
        process.stdin.close()
    return Load(rate, t0, spawned)


def run(urls: list[str], path: str, **options: Any) -> Result:
    return start(urls, path, **options).wait()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="a target, e.g. http://127.0.0.1:8000 (repeat)")
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--lines", type=Path, default=None, help="bench/post.lua's line file (redemptions)")
    args = parser.parse_args()
    count = sum(1 for _ in open(args.lines, encoding="ascii")) if args.lines else 0
    result = run(args.url, args.path, rate=args.rate, seconds=args.seconds, connections=args.connections,
                 processes=args.processes, lines=args.lines, count=count)
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
