"""Before and after, in one window: the redemption through `PostgresDatabase` (the pool on
worker threads the service uses, 64 in flight), this tree against another, in alternating
short bursts (issue 18).

    .venv/bin/python bench/ab_redeem.py --compare /tmp/old            # `git archive` of an older commit there
    .venv/bin/python bench/ab_redeem.py --compare /tmp/old --rounds 12 --burst 800

This machine's speed drifts by ±30 % within minutes, and two full `scripts/bench compare` runs
minutes apart disagree by more than a change of a few round trips is worth. Here each tree runs
in a process of its own (its own `promo`, its own scratch database with the same data: the
shipped offer, fresh accounts and keys); the bursts alternate (ABBA…), so both trees meet the
same drift, and each round's ratio compares neighbours. Per burst: redemptions/s, this
process's CPU and the PostgreSQL backends' CPU per redemption (/proc). Medians over rounds.
Everything targets 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL = 10


def child(tree: Path, redemptions: int) -> None:
    """Serve bursts on stdin ('<count>' per line; a JSON line of figures per burst), with the
    `promo` of `tree` (its bench/inprocess.py puts its own tree first on sys.path)."""
    sys.path.insert(0, str(tree))
    from bench import inprocess
    from bench.sampling import CpuMeter, backend_pids
    from promo.backends.postgresql import PostgresDatabase
    from promo.redemption import redeem
    from tests.support.pg import ADMIN_URL

    async def serve(url: str) -> None:
        loop = asyncio.get_running_loop()
        async with PostgresDatabase(url, pool_size=POOL) as db:
            await db.read(lambda conn: conn.execute("SELECT 1").fetchone())  # the pool open
            pids = backend_pids(ADMIN_URL, url.rpartition("/")[2])
            print("ready", flush=True)
            done, gate = 0, asyncio.Semaphore(inprocess.IN_FLIGHT)

            async def one(i: int) -> bool:
                async with gate:
                    return (await redeem(db, inprocess.request(i), inprocess.NOW, guess_limit=10**6)).redeemed

            while line := await loop.run_in_executor(None, sys.stdin.readline):
                count = int(line)

                server = CpuMeter(pids).start()
                app0, started = time.process_time(), time.perf_counter()
                redeemed = sum(await asyncio.gather(*(one(i) for i in range(done, done + count))))
                wall, app = time.perf_counter() - started, time.process_time() - app0
                server_s = server.stop()
                done += count
                print(json.dumps({"redeemed": redeemed, "per_s": count / wall, "app_ms": app / count * 1000,
                                  "server_ms": server_s / count * 1000}), flush=True)

    with inprocess.pg_database(redemptions) as url:
        asyncio.run(serve(url))


def start(tree: Path, redemptions: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, __file__, "--child", str(tree), str(redemptions)], cwd=tree,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise SystemExit(f"{tree}: the child did not start")
    return process


def burst(process: subprocess.Popen[str], count: int) -> dict[str, float]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{count}\n")
    process.stdin.flush()
    got: dict[str, float] = json.loads(process.stdout.readline())
    if got["redeemed"] != count:
        raise SystemExit(f"{got['redeemed']} of {count} redeemed")
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=Path, help="the other source tree (e.g. `git archive` of an older commit)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--burst", type=int, default=600, help="redemptions per burst")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return
    if args.compare is None:
        parser.error("--compare TREE is required")
    trees = {"this": ROOT, "other": args.compare.resolve()}
    total = (args.rounds + 1) * args.burst
    children = {name: start(tree, total) for name, tree in trees.items()}
    try:
        for process in children.values():
            burst(process, args.burst)  # warm: connections, prepared statements, caches
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                rows[name].append(burst(children[name], args.burst))
            this, other = rows["this"][-1], rows["other"][-1]
            print(f"round {r + 1}: this {this['per_s']:.0f}/s ({this['app_ms']:.2f} + {this['server_ms']:.2f} ms), "
                  f"other {other['per_s']:.0f}/s ({other['app_ms']:.2f} + {other['server_ms']:.2f} ms)", flush=True)
    finally:
        for process in children.values():
            assert process.stdin is not None
            process.stdin.close()
            process.wait(60)

    def median(name: str, key: str) -> float:
        return statistics.median(row[key] for row in rows[name])

    ratios = {key: statistics.median(t[key] / o[key] for t, o in zip(rows["this"], rows["other"], strict=True))
              for key in ("per_s", "app_ms", "server_ms")}
    print(f"\nmedians of {args.rounds} rounds of {args.burst} redemptions, pool of {POOL}, 64 in flight:")
    for name, tree in trees.items():
        print(f"  {name:5} {median(name, 'per_s'):6.0f}/s   app {median(name, 'app_ms'):.2f} ms   "
              f"server {median(name, 'server_ms'):.2f} ms   ({tree})")
    print(f"  this / other, median of the rounds' ratios: redemptions/s {ratios['per_s']:.2f}, "
          f"app CPU {ratios['app_ms']:.2f}, server CPU {ratios['server_ms']:.2f}")


if __name__ == "__main__":
    main()
