"""The demo offer does what README's table says, for any email address (`promo demo`)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from promo.demo import DEMO_SLUG, POOL_SIZE, install_demo
from promo.redemption import RedeemRequest, redeem_sync

README = Path(__file__).resolve().parent.parent / "README.md"
# | `DEMO1-…` | Office 365 Home ESD | Denmark | a code |
ROWS = re.findall(r"^\| `(DEMO\d-[A-Z0-9-]+)` \| [^|]+ \| [^|]+ \| ([^|]+?) \|$", README.read_text(encoding="utf-8"), re.M)


def test_the_readme_lists_the_demo_keys() -> None:
    assert len(ROWS) == 5


@pytest.mark.parametrize(("key", "outcome"), ROWS)
def test_each_demo_key_does_what_the_readme_says_for_any_address(conn: sqlite3.Connection, key: str, outcome: str) -> None:
    now = datetime.now(UTC)
    install_demo(conn, now)
    # A newcomer's own address: the demo keys' records name no account, and the demo offer allows that (R-X5).
    request = RedeemRequest(DEMO_SLUG, f"newcomer-{key[:5].lower()}@example.org", key, terms_accepted=True).normalized()
    result = redeem_sync(conn, request, now)
    if outcome == "a code":
        assert result.redeemed, result.decision.as_dict()
    else:
        assert not result.redeemed and result.decision.rules == [outcome.removeprefix("refused, ")]


def test_the_demo_offer_allows_unbound_keys_and_the_shipped_offer_does_not(conn: sqlite3.Connection) -> None:
    from promo.campaign_store import get_campaign

    install_demo(conn, datetime.now(UTC))
    assert get_campaign(conn, DEMO_SLUG).campaign.allow_unbound_keys is True
    assert get_campaign(conn, "office365-xbox-gold-2013").campaign.allow_unbound_keys is False


def test_the_demo_codes_go_through_the_import_with_their_audit_event_and_source_lines(conn: sqlite3.Connection) -> None:
    """Issue 16: the demo's reward codes and licence keys are imported as any code file is: one
    batch per pool named "demo", a source line per code, and a codes:batch:imported event."""
    now = datetime.now(UTC)
    install_demo(conn, now)
    events = conn.execute("SELECT actor, subject, data FROM audit_events WHERE tag = 'codes:batch:imported' ORDER BY seq").fetchall()
    by_subject = {subject: (actor, json.loads(data)) for actor, subject, data in events}
    assert len(events) == 2, events
    for slug, count in ((DEMO_SLUG, POOL_SIZE), ("nonprofit-donations", None)):
        actor, data = by_subject[f"campaign:{slug}"]
        batch = conn.execute("SELECT b.id, b.source, b.code_count FROM code_batches b JOIN campaigns c ON c.id = b.campaign_id"
                             " WHERE c.slug = ?", (slug,)).fetchall()
        assert len(batch) == 1 and batch[0]["source"] == "demo"
        assert actor == "demo" and data == {"batch": batch[0]["id"], "source": "demo", "codes": batch[0]["code_count"]}
        assert count is None or data["codes"] == count
        lines = [row[0] for row in conn.execute("SELECT source_line FROM reward_codes WHERE batch_id = ? ORDER BY source_line",
                                                (batch[0]["id"],))]
        assert lines == list(range(2, data["codes"] + 2))  # line 1 is the header
    # Run again: the pools are full, so nothing is imported and no event is written.
    install_demo(conn, now)
    assert conn.execute("SELECT COUNT(*) FROM audit_events WHERE tag = 'codes:batch:imported'").fetchone()[0] == 2
