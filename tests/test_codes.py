"""promo/codes.py on a real SQLite file: what a code's expiry means, which code a redemption
takes, stock by status, and voiding a batch (issued codes stay with their owners, R-X10).
The import's line-by-line refusals are in tests/test_imports.py."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from promo.campaign_store import StoredCampaign
from promo.codes import batch_of, batches, claim_code, import_codes, stock, take_code, void_batch
from promo.db import transaction
from promo.errors import InputError
from promo.timeutil import from_db_time
from tests.support.console import audit_changes
from tests.support.database import DURING, csv_bytes, reward_code

STATED_EXPIRY = datetime(2014, 10, 31, tzinfo=UTC)  # what the shipped offer promises (R-X9)


def pool(conn: sqlite3.Connection, stored: StoredCampaign, rows: list[list[str]], name: str = "codes.csv") -> int:
    header = ["code", "expires_at"] if rows and len(rows[0]) == 2 else ["code"]
    return import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=csv_bytes(header, rows),
                        source_name=name, now=DURING).batch_id


def claim(conn: sqlite3.Connection, stored: StoredCampaign) -> str | None:
    with transaction(conn):
        claimed = claim_code(conn, campaign_id=stored.id, not_expiring_before=STATED_EXPIRY, now=DURING)
    return claimed.code if claimed else None


def counts(conn: sqlite3.Connection, stored: StoredCampaign) -> dict[str, int]:
    return stock(conn, campaign_id=stored.id, not_expiring_before=STATED_EXPIRY, now=DURING)


def test_a_bare_day_is_valid_through_that_whole_day_in_the_campaigns_zone(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    pool(conn, stored, [[reward_code(1), "2015-01-31"], [reward_code(2), "2015-02-01T09:30:00+01:00"]])
    expiry = dict(conn.execute("SELECT code, expires_at FROM reward_codes").fetchall())
    # Copenhagen is UTC+1 in winter: the 31st ends at 23:00 UTC.
    assert from_db_time(expiry[reward_code(1)]) == datetime(2015, 1, 31, 23, 0, tzinfo=UTC) - timedelta(microseconds=1)
    assert from_db_time(expiry[reward_code(2)]) == datetime(2015, 2, 1, 8, 30, tzinfo=UTC)


def test_a_code_without_expiry_gets_the_campaigns_stated_one(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    pool(conn, stored, [[reward_code(1)]])
    [(expires_at,)] = conn.execute("SELECT expires_at FROM reward_codes").fetchall()
    assert from_db_time(expires_at) == stored.campaign.code_expires_at


def test_a_redemption_never_takes_a_voided_code_or_one_that_expires_before_the_stated_expiry(
        conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    voided = pool(conn, stored, [[reward_code(1), "2014-12-01"]], name="voided.csv")
    with transaction(conn):
        void_batch(conn, campaign_id=stored.id, slug=stored.campaign.slug, batch_id=voided, actor="test", now=DURING)
    pool(conn, stored, [[reward_code(2), "2014-10-30"], [reward_code(3), "2015-06-01"], [reward_code(4), "2014-11-15"]])
    assert [claim(conn, stored) for _ in range(3)] == [reward_code(4), reward_code(3), None]
    assert counts(conn, stored) == {"available": 0, "issued": 2, "expired": 1, "voided": 1}


def test_a_code_is_never_taken_twice(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    pool(conn, stored, [[reward_code(1)]])
    [(code_id,)] = conn.execute("SELECT id FROM reward_codes").fetchall()
    with transaction(conn):
        take_code(conn, code_id, now=DURING)
    with pytest.raises(RuntimeError, match="claimed concurrently"), transaction(conn):
        take_code(conn, code_id, now=DURING)


def test_voiding_a_batch_leaves_issued_codes_with_their_owners_and_is_audited(
        conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    batch = pool(conn, stored, [[reward_code(n)] for n in range(5)])
    assert claim(conn, stored) is not None
    with transaction(conn):
        assert void_batch(conn, campaign_id=stored.id, slug=stored.campaign.slug, batch_id=batch, actor="staff:m", now=DURING) == 4
        assert void_batch(conn, campaign_id=stored.id, slug=stored.campaign.slug, batch_id=batch, actor="staff:m", now=DURING) == 0
    assert counts(conn, stored) == {"available": 0, "issued": 1, "expired": 0, "voided": 4}
    summary = batch_of(conn, stored.id, batch)
    assert summary is not None and (summary.code_count, summary.issued, summary.voided, summary.voidable) == (5, 1, 4, 0)
    assert audit_changes(conn, "codes:batch:voided") == [{"batch": batch, "voided": 4}, {"batch": batch, "voided": 0}]


def test_a_batch_of_another_campaign_cannot_be_voided(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    batch = pool(conn, stored, [[reward_code(1)]])
    with pytest.raises(InputError) as refused, transaction(conn):
        void_batch(conn, campaign_id=stored.id + 1, slug="other", batch_id=batch, actor="test", now=DURING)
    assert refused.value.errors[0].field == "batch" and f"batch {batch} is not one" in refused.value.errors[0].message
    assert batch_of(conn, stored.id + 1, batch) is None
    assert counts(conn, stored)["available"] == 1


def test_batches_are_listed_newest_first_with_what_was_issued(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    first = pool(conn, stored, [[reward_code(n)] for n in range(2)], name="first.csv")
    second = pool(conn, stored, [[reward_code(n)] for n in range(10, 13)], name="second.csv")
    claim(conn, stored)
    listed = batches(conn, stored.id).items
    assert [(b.id, b.source, b.code_count) for b in listed] == [(second, "second.csv", 3), (first, "first.csv", 2)]
    assert sum(b.issued for b in listed) == 1


def test_a_file_with_no_codes_is_refused_and_leaves_no_batch(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    with pytest.raises(InputError) as refused:
        pool(conn, stored, [])
    assert [(e.field, e.message) for e in refused.value.errors] == [("file", "holds no codes")]
    assert batches(conn, stored.id).items == []
