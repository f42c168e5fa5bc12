"""Engine benchmark: imports and the redemption transaction, in-process, on a fresh SQLite
file. Prints a table and writes bench/results-engine.json. Run: .venv/bin/python bench/engine.py

Figures (see README "Measured"): 1,000,000 code import, 200,000 activation import, and
the redemption transaction through the async Database (one hop per transaction, as the
web service runs it) and called directly on a connection (the storage ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data import code  # noqa: E402
from promo.activations import import_activations  # noqa: E402
from promo.campaign_store import get_campaign, save_campaign  # noqa: E402
from promo.campaigns import parse_campaign_file, shipped_campaign_text  # noqa: E402
from promo.catalog import load_catalog, shipped_catalog, upsert_skus  # noqa: E402
from promo.codes import import_codes  # noqa: E402
from promo.db import Database, connect, transaction  # noqa: E402
from promo.migrate import migrate  # noqa: E402
from promo.redemption import RedeemRequest, redeem, redeem_sync  # noqa: E402

SLUG = "office365-xbox-gold-2013"
NOW = datetime(2013, 9, 1, 12, tzinfo=UTC)


def key(n: int) -> str:
    return f"PK{n:023d}"



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--activations", type=int, default=200_000)
    parser.add_argument("--redemptions", type=int, default=20_000)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    args = parser.parse_args()
    results: dict[str, float | int | str] = {"synchronous": args.synchronous}

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        conn = connect(path, synchronous=args.synchronous)
        migrate(conn)
        with transaction(conn):
            upsert_skus(conn, shipped_catalog())
            save_campaign(conn, parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn)), actor="bench", now=NOW)
        stored = get_campaign(conn, SLUG)

        data = ("code\n" + "\n".join(code(i) for i in range(args.codes)) + "\n").encode()
        started = time.perf_counter()
        import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=io.BytesIO(data),
                     source_name="bench.csv", now=NOW)
        results["import_codes_s"] = round(time.perf_counter() - started, 2)
        results["codes"] = args.codes

        n = min(args.redemptions, args.activations // 2)
        # Each key bound to the account that redeems it below (R-X5: an unbound key goes to review).
        owner = [f"u{i}@example.com" for i in range(n)] + [f"v{i}@example.com" for i in range(n)]
        rows = "".join(f"{key(i)},O365-HOME-ESD,DK,2013-08-01,2013-08-02,{owner[i] if i < len(owner) else ''}\n"
                       for i in range(args.activations))
        data = ("product_key,sku,country,purchased_at,activated_at,account_email\n" + rows).encode()
        started = time.perf_counter()
        import_activations(conn, source=io.BytesIO(data), catalog=load_catalog(conn), now=NOW)
        results["import_activations_s"] = round(time.perf_counter() - started, 2)
        results["activations"] = args.activations

        started = time.perf_counter()
        for i in range(n):
            request = RedeemRequest(SLUG, f"u{i}@example.com", key(i), terms_accepted=True).normalized()
            assert redeem_sync(conn, request, NOW).redeemed
        results["redeem_direct_per_s"] = round(n / (time.perf_counter() - started))
        conn.close()

        async def through_database() -> float:
            async with Database(path, synchronous=args.synchronous) as db:
                requests = [RedeemRequest(SLUG, f"v{i}@example.com", key(n + i), terms_accepted=True) for i in range(n)]
                started = time.perf_counter()
                for batch in range(0, n, 64):  # 64 in flight, like 64 connections
                    outcomes = await asyncio.gather(*(redeem(db, r, NOW) for r in requests[batch : batch + 64]))
                    assert all(o.redeemed for o in outcomes)
                return n / (time.perf_counter() - started)

        results["redeem_async_64_in_flight_per_s"] = round(asyncio.run(through_database()))
        results["redemptions_each"] = n

    width = max(len(k) for k in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")
    out = Path(__file__).with_name("results-engine.json")
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
