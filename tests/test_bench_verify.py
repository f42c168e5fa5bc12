"""The benchmark's database verification (issue 6: every issued code belongs to exactly one
redemption, no account has two, every redemption has its outbox row and audit event)
passes on honest data and catches each kind of damage, so "verify: passes" means something."""

from __future__ import annotations

import sqlite3

import pytest

from bench.run import verify
from promo.config import Settings
from tests.support.redemption import redeem

DAMAGE = {
    "issued_codes_equal_redemptions": "UPDATE reward_codes SET issued_at = '2013-09-01T12:00:00.000000Z'"
                                      " WHERE id NOT IN (SELECT code_id FROM redemptions) AND id = (SELECT MAX(id) FROM reward_codes)",
    "no_account_twice": "INSERT INTO redemptions (campaign_id, account_email, slot, product_key, code_id, terms_url,"
                        " terms_accepted_at, redeemed_at) SELECT campaign_id, account_email, 2, 'ANOTHERKEY', (SELECT MAX(id)"
                        " FROM reward_codes), terms_url, terms_accepted_at, redeemed_at FROM redemptions LIMIT 1",
    "every_redemption_has_outbox_row": "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox)",
    "every_redemption_has_audit_event": "UPDATE audit_events SET tag = 'something:else:happened'"
                                        " WHERE seq = (SELECT MIN(seq) FROM audit_events WHERE tag = 'redemption:code:issued')",
}


@pytest.fixture
def redeemed(ready: sqlite3.Connection) -> sqlite3.Connection:  # noqa: F811
    assert redeem(ready, key=1).redeemed and redeem(ready, key=2, account="bo@example.com").redeemed
    return ready


def test_verification_passes_on_what_the_service_wrote(redeemed: sqlite3.Connection, settings: Settings) -> None:
    result = verify(settings.database_path)
    assert result.pop("redemptions") == 2
    assert result == dict.fromkeys(result, True) and set(result) == {"integrity", *DAMAGE}


@pytest.mark.parametrize("check", sorted(DAMAGE))
def test_verification_catches_each_kind_of_damage(redeemed: sqlite3.Connection, settings: Settings, check: str) -> None:
    redeemed.execute(DAMAGE[check])
    result = verify(settings.database_path)
    assert result[check] is False and result["integrity"] is True
