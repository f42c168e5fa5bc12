"""Time `verify_chain` over 100,000 audit events (printed, not asserted).
Run: .venv/bin/python bench/audit_verify.py [EVENTS]"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from promo.audit import append_event, verify_chain  # noqa: E402
from promo.db import connect, transaction  # noqa: E402
from promo.migrate import migrate  # noqa: E402


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "audit.sqlite3", synchronous="NORMAL")
        migrate(conn)
        start = datetime(2013, 8, 1, tzinfo=UTC)
        began = time.perf_counter()
        with transaction(conn):
            for n in range(events):
                append_event(conn, tag="redemption:code:issued", actor=f"account:u{n}@example.com",
                             subject=f"redemption:{n}", ip="192.0.2.1", at=start + timedelta(seconds=n),
                             data={"campaign": "bench", "sku": "O365-HOME-ESD", "country": "DK",
                                   "code": "*****-*****-*****-*****-*0001", "terms_accepted": True})
        written = time.perf_counter() - began
        began = time.perf_counter()
        state = verify_chain(conn)
        verified = time.perf_counter() - began
        assert state.ok and state.events == events
        print(f"audit events written  {events:>9,}  in {written:6.2f} s  ({events / written:,.0f}/s)")
        print(f"audit chain verified  {events:>9,}  in {verified:6.2f} s  ({events / verified:,.0f}/s)")


if __name__ == "__main__":
    main()
