"""What each attempt limit's check costs as an attacker tries harder (`scripts/bench limits`).

Every limit that counts attempts in a time window is listed once here (LIMITS; the test
suite walks the same list, tests/test_limits.py). For each, the check the service runs is
timed on a real SQLite file with 0, 10,000 and 100,000 prior failures by the attacker in
the window, and with 100,000 rows of other people's (the service's ordinary history) and
none of the attacker's. "before" is the query the service ran until issue 14 (COUNT(*) of
every matching row, and for two of them no index); "now" counts through an index and no
further than the limit. Prints microseconds per check.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promo.auth import SIGNIN_REQUESTS_PER_WINDOW, signin_requests_since  # noqa: E402
from promo.db import transaction  # noqa: E402
from promo.nonprofit.validation_codes import VERIFY_FAILURES_PER_HOUR, failed_verifications  # noqa: E402
from promo.outbox import sends_since  # noqa: E402
from promo.redemption import REWARD_EMAIL, RedeemRequest, failed_key_attempts  # noqa: E402
from promo.staff import IP_FAILURES_PER_WINDOW, failures_from_ip  # noqa: E402
from promo.timeutil import db_time  # noqa: E402
from tests.support.database import prepare_database  # noqa: E402

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
IN_WINDOW = db_time(NOW - timedelta(minutes=1))
IP, ACCOUNT, SUBJECT, PARTNER = "198.51.100.7", "mallory@example.com", "redemption:1", 1
KEY_LIMIT, RESEND_LIMIT = 10, 3  # config.toml's security.key_attempts_per_hour and mail.resend_per_hour


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    fill: Callable[[sqlite3.Connection, int, bool], None]  # (conn, rows, the attacker's?) in the window
    check: Callable[[sqlite3.Connection], int]  # the service's check: how many failures it counted
    before: str  # the query used until issue 14, for the comparison
    before_params: dict[str, object]


def _guess_rows(conn: sqlite3.Connection, n: int, mine: bool, by: str) -> None:
    campaign = conn.execute("SELECT MIN(id) FROM campaigns").fetchone()[0]
    offset = conn.execute("SELECT COUNT(*) FROM redemption_attempts").fetchone()[0]
    rows = ((campaign, ACCOUNT if mine and by == "account" else f"u{offset + i}@example.com",
             IP if mine and by == "ip" else f"10.{(offset + i) // 65536 % 256}.{(offset + i) // 256 % 256}.{(offset + i) % 256}",
             f"K{offset + i:024d}", IN_WINDOW) for i in range(n))
    conn.executemany("INSERT INTO redemption_attempts (campaign_id, account_email, client_ip, product_key, outcome,"
                     " failed_rules, result, attempted_at, guess_failure) VALUES (?, ?, ?, ?, 'refused', ' R-X11 ', '{}', ?, 1)",
                     rows)


def _staff_rows(conn: sqlite3.Connection, n: int, mine: bool) -> None:
    offset = conn.execute("SELECT COUNT(*) FROM staff_signin_attempts").fetchone()[0]
    conn.executemany("INSERT INTO staff_signin_attempts (email, ip, succeeded, attempted_at) VALUES (?, ?, 0, ?)",
                     ((f"x{offset + i}@example.com", IP if mine else f"10.1.{(offset + i) // 256 % 256}.{(offset + i) % 256}",
                       IN_WINDOW) for i in range(n)))


def _signin_rows(conn: sqlite3.Connection, n: int, mine: bool) -> None:
    offset = conn.execute("SELECT COUNT(*) FROM signin_tokens").fetchone()[0]
    conn.executemany("INSERT INTO signin_tokens (jti, account_email, created_at) VALUES (?, ?, ?)",
                     ((f"jti{offset + i}", ACCOUNT if mine else f"u{offset + i}@example.com", IN_WINDOW) for i in range(n)))


def _outbox_rows(conn: sqlite3.Connection, n: int, mine: bool) -> None:
    offset = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    conn.executemany("INSERT INTO outbox (message_id, template, recipient, subject_ref, status, attempts, next_attempt_at,"
                     " created_at) VALUES (?, ?, ?, ?, 'sent', 1, ?, ?)",
                     ((f"<m{offset + i}@bench>", REWARD_EMAIL, ACCOUNT, SUBJECT if mine else f"redemption:{offset + i + 2}",
                       IN_WINDOW, IN_WINDOW) for i in range(n)))


def _partner_rows(conn: sqlite3.Connection, n: int, mine: bool) -> None:
    for partner in (1, 2):
        conn.execute("INSERT OR IGNORE INTO partners (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
                     (partner, f"partner {partner}", f"hash{partner}", IN_WINDOW))
    conn.executemany("INSERT INTO validation_code_uses (code_id, partner_id, purpose, valid, used_at)"
                     " VALUES (NULL, ?, 'verify', 0, ?)", ((PARTNER if mine else 2, IN_WINDOW) for _ in range(n)))


_ATTEMPT = RedeemRequest("any", ACCOUNT, "K" * 25, terms_accepted=True, client_ip=IP)
_HOUR = NOW - timedelta(hours=1)

LIMITS = [
    Limit("product keys per IP (R-X12)", KEY_LIMIT, lambda c, n, m: _guess_rows(c, n, m, "ip"),
          lambda c: failed_key_attempts(c, _ATTEMPT, since=_HOUR, limit=KEY_LIMIT),
          "SELECT COUNT(*) FROM redemption_attempts WHERE guess_failure = 1 AND client_ip = :ip AND attempted_at >= :since",
          {"ip": IP, "since": db_time(_HOUR)}),
    Limit("product keys per account (R-X12)", KEY_LIMIT, lambda c, n, m: _guess_rows(c, n, m, "account"),
          lambda c: failed_key_attempts(c, _ATTEMPT, since=_HOUR, limit=KEY_LIMIT),
          "SELECT COUNT(*) FROM redemption_attempts WHERE guess_failure = 1 AND account_email = :a AND attempted_at >= :since",
          {"a": ACCOUNT, "since": db_time(_HOUR)}),
    Limit("staff sign-ins per IP", IP_FAILURES_PER_WINDOW, _staff_rows,
          lambda c: failures_from_ip(c, IP, since=NOW - timedelta(minutes=15), limit=IP_FAILURES_PER_WINDOW),
          "SELECT COUNT(*) FROM staff_signin_attempts WHERE succeeded = 0 AND ip = :ip AND attempted_at >= :since",
          {"ip": IP, "since": db_time(NOW - timedelta(minutes=15))}),
    Limit("sign-in links per address", SIGNIN_REQUESTS_PER_WINDOW, _signin_rows,
          lambda c: signin_requests_since(c, ACCOUNT, since=NOW - timedelta(minutes=15), limit=SIGNIN_REQUESTS_PER_WINDOW),
          "SELECT COUNT(*) FROM signin_tokens WHERE account_email = :e AND created_at >= :since",
          {"e": ACCOUNT, "since": db_time(NOW - timedelta(minutes=15))}),
    Limit("reward email resends (R-X10)", RESEND_LIMIT + 1, _outbox_rows,
          lambda c: sends_since(c, template=REWARD_EMAIL, subject_ref=SUBJECT, since=_HOUR, limit=RESEND_LIMIT + 1),
          "SELECT COUNT(*) FROM outbox WHERE template = :t AND subject_ref = :s AND created_at >= :since",
          {"t": REWARD_EMAIL, "s": SUBJECT, "since": db_time(_HOUR)}),
    Limit("partner look-ups (R-V6)", VERIFY_FAILURES_PER_HOUR, _partner_rows,
          lambda c: failed_verifications(c, PARTNER, since=_HOUR, limit=VERIFY_FAILURES_PER_HOUR),
          "SELECT COUNT(*) FROM validation_code_uses WHERE partner_id = :p AND valid = 0 AND used_at >= :s",
          {"p": PARTNER, "s": db_time(_HOUR)}),
]
ISSUE_14_INDEXES = ("signin_tokens_account", "outbox_subject")  # migration 0011: absent "before"


def database(path: Path, *, before: bool = False) -> sqlite3.Connection:
    conn = prepare_database(path)
    if before:
        for index in ISSUE_14_INDEXES:
            conn.execute(f"DROP INDEX {index}")
    return conn


def fill(conn: sqlite3.Connection, limit: Limit, rows: int, *, mine: bool) -> None:
    with transaction(conn):
        limit.fill(conn, rows, mine)
    conn.execute("ANALYZE")


def per_check_us(run: Callable[[], object]) -> float:
    """The best of five rounds (a shared machine's noise only ever adds time)."""
    rounds = []
    for _ in range(5):
        calls, started = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - started < 0.05:
            run()
            calls += 1
        rounds.append((time.perf_counter() - started) / calls * 1e6)
    return min(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="promo-bench-limits-"))
    columns = [("0", 0, True), ("10,000", 10_000, True), ("100,000", 100_000, True), ("others' 100,000", 100_000, False)]
    print(f"{'limit':<36} {'':<7}" + "".join(f"{title:>17}" for title, _, _ in columns) + "   (µs per check)")
    for n, limit in enumerate(LIMITS):
        figures: dict[str, list[float]] = {"before": [], "now": []}
        for title, rows, mine in columns:
            for label in ("before", "now"):
                path = work / f"{n}-{label}-{title}.sqlite3".replace(",", "").replace("'", "").replace(" ", "-")
                conn = database(path, before=label == "before")
                if rows:
                    fill(conn, limit, rows, mine=mine)
                if label == "before":
                    figures[label].append(per_check_us(lambda c=conn, q=limit: c.execute(q.before, q.before_params).fetchone()))
                else:
                    figures[label].append(per_check_us(lambda c=conn, q=limit: q.check(c)))
                conn.close()
                path.unlink()
        for label in ("before", "now"):
            print(f"{limit.name if label == 'before' else '':<36} {label:<7}" + "".join(f"{v:>17.1f}" for v in figures[label]))
    work.rmdir()


if __name__ == "__main__":
    main()
