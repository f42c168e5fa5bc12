"""The demo offer does what README's table says, for any email address (`promo demo`)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from promo.demo import DEMO_SLUG, install_demo
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
