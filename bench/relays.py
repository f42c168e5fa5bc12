"""Email throughput with 1, 2 and 3 `promo relay` processes on one PostgreSQL database
(issue 18, item 4).

    .venv/bin/python bench/relays.py                     # 1, 2, 3 relays; 6,000 emails each; about 1 minute
    .venv/bin/python bench/relays.py --relays 1 2 --emails 3000

Per run: a fresh database promo_test_relays_<random> on PROMO_BENCH_PG_ADMIN's server
(dropped after), an aiosmtpd sink that accepts and keeps nothing, as N processes sharing
one port (SO_REUSEPORT; one aiosmtpd process took about 400 emails/s, and one sink for three
relays measured the sink), and N `promo relay` processes (mail.connections lanes each, 4 by default). Once every relay
LISTENs (pg_stat_activity), `--emails` sign-in emails are queued in one transaction and one
NOTIFY is sent; the clock runs from that commit until no email is queued any more (polled
every 50 ms from the outbox, so each figure is sent *and recorded*). Printed: emails/s per
run, the ratio to the first run, the relay processes' CPU (user + system, /proc) per email,
and the machine's load average when the run began (this machine is shared: a figure taken
under load says so). The relays, the sink and PostgreSQL share this machine's
cores: past two relays on two cores the figure says what the machine, not the design, allows.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.sampling import cpu_seconds as process_cpu_seconds  # noqa: E402
from promo.backends import pg_connection, pg_schema  # noqa: E402
from promo.db import transaction  # noqa: E402
from promo.outbox import enqueue  # noqa: E402
from promo.timeutil import utcnow  # noqa: E402
from tests.support.mailserver import free_port  # noqa: E402
from tests.support.pg import CODE_POINT_ORDER  # noqa: E402

ADMIN_URL = os.environ.get("PROMO_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent
PROMO = str(Path(sys.executable).parent / "promo")


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {seconds} s: {what}")
        time.sleep(0.05)


def sink(port: int, seconds: float) -> None:
    """An aiosmtpd server that accepts every message and keeps nothing, on a port other
    processes share (SO_REUSEPORT: the kernel spreads connections), for `seconds` at most."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Accept:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Accept(), hostname="sink"), "127.0.0.1", port, reuse_port=True)
        async with server:
            await asyncio.sleep(seconds)  # bounded: stops by itself

    asyncio.run(serve())


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these (running) processes so far."""
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


def one_run(relays: int, emails: int, connections: int, folder: Path) -> tuple[float, float]:
    name = f"promo_test_relays_{secrets.token_hex(4)}"
    base = ADMIN_URL.rpartition("/")[0]
    url = f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" {CODE_POINT_ORDER}')  # the baseline migration needs it
    processes: list[subprocess.Popen[bytes]] = []
    try:
        conn = pg_connection.connect(url)
        pg_schema.migrate(conn)
        conn.reread_identities()
        sink_port = free_port()
        processes += [subprocess.Popen([sys.executable, __file__, "--sink", str(sink_port), "600"]) for _ in range(relays)]
        config = folder / f"relays-{relays}.toml"
        config.write_text(f'[database]\nurl = "{url}"\n[mail]\nsink = false\nhost = "127.0.0.1"\nport = {sink_port}\n'
                          f'connections = {connections}\n[logging]\nlevel = "WARNING"\n', encoding="utf-8")
        env = {**os.environ, "PROMO_CONFIG": str(config)}
        with open(folder / "relays.log", "ab") as log:
            processes += [subprocess.Popen([PROMO, "relay"], env=env, stdout=log, stderr=subprocess.STDOUT)
                          for _ in range(relays)]
        wait(lambda: _accepts(sink_port), 30, "the sink accepts")
        listening = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN promo_outbox'"
        wait(lambda: conn.execute(listening).fetchone()[0] == relays, 60, f"{relays} relays LISTEN")
        relay_pids = [process.pid for process in processes[relays:]]
        with transaction(conn):
            for i in range(emails):
                enqueue(conn, template="signin_link", recipient=f"user{i}@bench.example", subject_ref=f"signin:b{i}",
                        at=utcnow(), payload={"link": f"https://promo.example/signin/{secrets.token_urlsafe(24)}",
                                              "minutes": 15})
        started, cpu_before = time.perf_counter(), cpu_seconds(relay_pids)
        conn.execute("NOTIFY promo_outbox")  # as the service's store does after such a commit
        queued = "SELECT COUNT(*) FROM outbox WHERE status = 'queued'"
        wait(lambda: conn.execute(queued).fetchone()[0] == 0, 600, "every email sent")
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(relay_pids) - cpu_before
        sent = conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sent'").fetchone()[0]
        if sent != emails:
            raise SystemExit(f"{emails - sent} emails were not sent (see {folder / 'relays.log'})")
        conn.close()
        return emails / elapsed, cpu / emails * 1000
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--emails", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=4, help="mail.connections of each relay")
    parser.add_argument("--sink", type=float, nargs=2, metavar=("PORT", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(int(args.sink[0]), args.sink[1])
        return
    folder = Path(tempfile.mkdtemp(prefix="promo-bench-relays-"))
    figures: dict[int, float] = {}
    print(f"{'relays':>6}  {'emails/s':>9}  {'vs first':>8}  {'relay CPU ms/email':>18}  {'load avg':>8}", flush=True)
    for relays in args.relays:
        load = os.getloadavg()[0]
        figures[relays], cpu_ms = one_run(relays, args.emails, args.connections, folder)
        first = figures[args.relays[0]]
        print(f"{relays:>6}  {figures[relays]:>9.0f}  {figures[relays] / first:>7.2f}x  {cpu_ms:>18.2f}  {load:>8.1f}",
              flush=True)
    print(f"{os.cpu_count()} cores; {args.emails} sign-in emails per run; logs in {folder}")


if __name__ == "__main__":
    main()
