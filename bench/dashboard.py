"""Dashboard query times at an empty campaign and at 1,000,000 codes / 100,000 redemptions
(issue 19, item 7): the campaign's dashboard, the overview of live campaigns, the campaign
list's stock (stock_report), and, for comparison, the pool scan the campaign list did before
(codes.stock). Run: .venv/bin/python bench/dashboard.py [--codes N] [--redemptions N]

Builds two campaigns on a fresh SQLite file through the real code: codes through the import,
redemptions through the redemption transaction (so its counters are written as in
production), spread over 30 days, one attempt in ten refused (R-X4), nine emails in ten
marked sent. Prints a table and writes bench/dashboard-results.json (or --out)."""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tomli_w  # noqa: E402

from bench.data import code  # noqa: E402
from promo.activations import import_activations  # noqa: E402
from promo.campaign_store import get_campaign, list_campaigns, save_campaign  # noqa: E402
from promo.campaigns import parse_campaign_file, shipped_campaign_text  # noqa: E402
from promo.catalog import load_catalog, shipped_catalog, upsert_skus  # noqa: E402
from promo.codes import import_codes, stock  # noqa: E402
from promo.dashboard import campaign_dashboard, overview  # noqa: E402
from promo.db import connect, transaction  # noqa: E402
from promo.migrate import migrate  # noqa: E402
from promo.outbox import mark_sent  # noqa: E402
from promo.redemption import RedeemRequest, redeem_unit  # noqa: E402
from promo.stock import stock_report  # noqa: E402

NOW = datetime(2026, 5, 31, 12, tzinfo=UTC)
FIRST = date(2026, 5, 1)
BATCH = 2_000  # redemptions per transaction while loading


def campaign_text(slug: str) -> str:
    data = tomllib.loads(shipped_campaign_text("office365-xbox-gold-2013"))
    data.update(slug=slug, timezone="Europe/Copenhagen")
    data["eligibility_window"] = {"first_day": date(2026, 3, 1), "last_day": date(2026, 6, 30)}
    data["redemption_window"] = {"first_day": FIRST, "last_day": date(2026, 7, 31)}
    data["reward"]["code_expires_on"] = date(2027, 12, 31)
    return tomli_w.dumps(data)


def timed(run: Callable[[], Any], repeat: int) -> float:
    """The median of `repeat` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def load(conn: Any, slug: str, codes: int, redemptions: int) -> dict[str, float]:
    """A campaign with `codes` codes and `redemptions` attempts (one in ten refused)."""
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(campaign_text(slug), load_catalog(conn)), actor="bench", now=NOW - timedelta(days=40))
    stored = get_campaign(conn, slug)
    took: dict[str, float] = {}
    if codes:
        started = time.perf_counter()
        data = ("code\n" + "\n".join(code(i) for i in range(codes)) + "\n").encode()
        import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=io.BytesIO(data), source_name="bench",
                     now=NOW - timedelta(days=35))
        took["import_codes_s"] = round(time.perf_counter() - started, 1)
    if redemptions:
        keys = ["product_key,sku,country,purchased_at,activated_at,account_email\n"]
        for n in range(redemptions):
            sku = "O365-HOME-MONTHLY" if n % 10 == 9 else "O365-HOME-ESD"  # every tenth is refused (R-X4)
            keys.append(f"BK{n:023d},{sku},DK,2026-04-01,2026-04-01,\n")
        import_activations(conn, catalog=load_catalog(conn), now=NOW - timedelta(days=35),
                           source=io.BytesIO("".join(keys).encode()))
        started = time.perf_counter()
        step = timedelta(days=30) / redemptions
        for first in range(0, redemptions, BATCH):
            with transaction(conn):
                for n in range(first, min(first + BATCH, redemptions)):
                    request = RedeemRequest(campaign=slug, account_email=f"u{n}@example.com", product_key=f"BK{n:023d}",
                                            terms_accepted=True)
                    redeem_unit(conn, request.normalized(), NOW - timedelta(days=30) + n * step)
        took["redemptions_per_s"] = round(redemptions / (time.perf_counter() - started))
        ids = [row[0] for row in conn.execute("SELECT id FROM outbox WHERE campaign_id = ? ORDER BY id", (stored.id,))]
        for first in range(0, len(ids), BATCH):
            with transaction(conn):
                for n, message in enumerate(ids[first:first + BATCH], first):
                    if n % 10:  # nine in ten sent, one still queued
                        mark_sent(conn, message, now=NOW - timedelta(hours=1), clear_payload=False)
    return took


def measure(conn: Any, slug: str, repeat: int) -> dict[str, float]:
    stored = get_campaign(conn, slug)
    return {
        "dashboard_ms": timed(lambda: campaign_dashboard(conn, stored, NOW), repeat),
        "overview_ms": timed(lambda: overview(conn, NOW), repeat),
        "campaign_list_stock_ms": timed(lambda: [stock_report(conn, s, NOW) for s in list_campaigns(conn)], repeat),
        "old_pool_scan_ms": timed(lambda: stock(conn, campaign_id=stored.id,
                                                not_expiring_before=stored.campaign.code_expires_at, now=NOW), repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--redemptions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "dashboard-results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "bench.sqlite3")
        migrate(conn)
        with transaction(conn):
            upsert_skus(conn, shipped_catalog())
        load(conn, "empty", 0, 0)
        empty = measure(conn, "empty", args.repeat)  # alone in the database: nothing else to skip over
        loading = load(conn, "big", args.codes, args.redemptions)
        big = measure(conn, "big", args.repeat)
        conn.close()
    results = {"codes": args.codes, "redemptions": args.redemptions, "empty": empty, "big": big, **loading}
    label = f"{args.codes:,} codes / {args.redemptions:,} attempts"
    print(f"{'median of ' + str(args.repeat) + ' runs':<34}{'empty campaign':>16}{label:>40}")
    for name in empty:
        print(f"{name:<34}{empty[name]:>13.2f} ms{big[name]:>37.2f} ms")
    for name, value in loading.items():
        print(f"{name:<34}{value:>56}")
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
