"""The one redemption transaction, through a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from promo.activations import import_activations
from promo.campaign_store import StoredCampaign
from promo.catalog import load_catalog
from promo.codes import import_codes
from promo.db import transaction
from promo.errors import InputError
from promo.redemption import RedeemRequest, redeem_sync
from tests.support.database import DURING, csv_bytes, product_key, reward_code
from tests.support.invariants import assert_chain_verifies
from tests.support.redemption import ANN, add_activations, add_codes, allow_unbound_keys, redeem

CPH = ZoneInfo("Europe/Copenhagen")


def one(conn: sqlite3.Connection, sql: str, **params: object) -> sqlite3.Row:
    return conn.execute(sql, params).fetchone()


def test_a_redemption_records_everything_in_one_transaction(ready: sqlite3.Connection) -> None:
    result = redeem(ready, client_ip="192.0.2.7", declared_country="dk")
    assert result.redeemed and result.code == reward_code(0)
    assert result.code_expires_at == datetime(2014, 10, 31, 22, 59, 59, 999999, tzinfo=UTC)
    red = one(ready, "SELECT * FROM redemptions WHERE id = :id", id=result.redemption_id)
    assert (red["account_email"], red["slot"], red["client_ip"]) == (ANN, 1, "192.0.2.7")
    assert red["terms_url"] == "https://www.xbox.com/live/termsofuse" and red["terms_accepted_at"]  # R-X8
    code = one(ready, "SELECT * FROM reward_codes WHERE id = :id", id=red["code_id"])
    assert code["issued_at"] is not None and code["code"] == result.code
    mail = one(ready, "SELECT * FROM outbox")
    assert (mail["recipient"], mail["status"], mail["subject_ref"]) == (ANN, "queued", f"redemption:{red['id']}")
    assert mail["message_id"].startswith("<redemption-")
    event = one(ready, "SELECT * FROM audit_events WHERE tag = 'redemption:code:issued'")
    assert reward_code(0) not in event["data"]  # codes are masked in the audit log
    assert json.loads(event["data"])["code"] == "*****-*****-*****-*****-*0000"
    attempt = one(ready, "SELECT * FROM redemption_attempts")
    assert (attempt["outcome"], attempt["redemption_id"]) == ("redeemed", red["id"])
    assert reward_code(0) not in attempt["result"]
    assert_chain_verifies(ready)


def test_the_result_masks_the_code_unless_shown_to_its_owner(ready: sqlite3.Connection) -> None:
    result = redeem(ready)
    assert result.as_dict()["code"] == "*****-*****-*****-*****-*0000"
    assert result.as_dict(reveal_code=True)["code"] == reward_code(0)


def test_keys_and_emails_are_accepted_as_people_type_them(ready: sqlite3.Connection) -> None:
    request = RedeemRequest(campaign="office365-xbox-gold-2013", account_email="  Ann@Example.com ",
                            product_key=" " + product_key(1).lower().replace("-", " ") + " ", terms_accepted=True)
    assert redeem_sync(ready, request.normalized(), DURING).redeemed
    assert one(ready, "SELECT account_email FROM redemptions")[0] == ANN


def test_one_reward_per_account_r_x6(ready: sqlite3.Connection) -> None:
    assert redeem(ready, key=1).redeemed
    second = redeem(ready, key=2, account="ANN@example.com")
    assert not second.redeemed and second.decision.rules == ["R-X6"]
    assert one(ready, "SELECT COUNT(*) FROM redemptions")[0] == 1


def test_a_product_key_redeems_once(ready: sqlite3.Connection) -> None:
    assert redeem(ready, key=1, account=ANN).redeemed
    again = redeem(ready, key=1, account="carl@example.com")
    assert again.decision.rules == ["R-X5"]
    assert again.decision.failures[0].reason == "key_already_redeemed"


def test_a_key_bound_to_another_account_is_refused(ready: sqlite3.Connection) -> None:
    assert redeem(ready, key=5, account=ANN).decision.rules == ["R-X5"]
    assert redeem(ready, key=5, account="Bob@Example.com").redeemed


@pytest.mark.parametrize(("key", "rules"), [(3, ["R-X4"]), (4, ["R-X2"]), (99, ["R-X11"])])
def test_refusals_are_logged_with_their_rules(ready: sqlite3.Connection, key: int, rules: list[str]) -> None:
    result = redeem(ready, key=key)
    assert not result.redeemed and result.decision.rules == rules
    attempt = one(ready, "SELECT * FROM redemption_attempts")
    assert attempt["outcome"] == "refused" and attempt["failed_rules"] == "".join(f" {r} " for r in rules)
    assert one(ready, "SELECT tag FROM audit_events ORDER BY seq DESC LIMIT 1")[0] == "redemption:claim:refused"
    assert one(ready, "SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL")[0] == 0
    assert one(ready, "SELECT COUNT(*) FROM outbox")[0] == 0


def test_terms_not_accepted_r_x8(ready: sqlite3.Connection) -> None:
    assert redeem(ready, terms=False).decision.rules == ["R-X8"]


def test_unknown_key_still_reports_the_window_and_terms(ready: sqlite3.Connection) -> None:
    late = datetime(2013, 11, 1, 0, 0, tzinfo=CPH).astimezone(UTC)
    assert redeem(ready, key=99, now=late, terms=False).decision.rules == ["R-X11", "R-X7", "R-X8"]


@pytest.mark.parametrize(("now", "redeemed"), [
    (datetime(2013, 11, 1, 0, 0, tzinfo=CPH) - timedelta(seconds=1), True),
    (datetime(2013, 11, 1, 0, 0, tzinfo=CPH), False),
    (datetime(2013, 11, 1, 0, 0, 1, tzinfo=CPH), False),
])
def test_redemption_window_closes_at_midnight_in_the_campaign_zone(ready: sqlite3.Connection, now: datetime, redeemed: bool) -> None:
    result = redeem(ready, now=now.astimezone(UTC))
    assert result.redeemed is redeemed
    if not redeemed:
        assert result.decision.rules == ["R-X7"]


def test_an_empty_pool_says_no_codes_left(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "a@example.com"), (2, "O365-HOME-ESD", "SE", "b@example.com")])
    add_codes(conn, stored, 1)
    assert redeem(conn, key=1, account="a@example.com").redeemed
    empty = redeem(conn, key=2, account="b@example.com")
    assert empty.decision.rules == ["STOCK"] and "no codes left" in empty.decision.failures[0].message


def test_codes_expiring_before_the_stated_expiry_are_never_issued(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", ANN)])
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, now=DURING, source_name="t.csv",
                 source=csv_bytes(["code", "expires_at"], [[reward_code(1), "2014-06-30"], [reward_code(2), "2013-08-01"]]))
    assert redeem(conn, key=1).decision.rules == ["STOCK"]


def test_the_same_idempotency_key_returns_the_first_result(ready: sqlite3.Connection) -> None:
    first = redeem(ready, key=1, idempotency_key="form-123")
    again = redeem(ready, key=1, idempotency_key="form-123")
    assert again.replayed and again.redeemed and again.code == first.code
    assert again.redemption_id == first.redemption_id
    assert one(ready, "SELECT COUNT(*) FROM redemption_attempts")[0] == 1
    # A refusal is replayed as a refusal, even if the situation has changed since.
    refused = redeem(ready, key=2, account="c@example.com", terms=False, idempotency_key="k2")
    replay = redeem(ready, key=2, account="c@example.com", terms=True, idempotency_key="k2")
    assert replay.replayed and replay.decision.rules == refused.decision.rules == ["R-X8"]
    # The key belongs to the account: another account with the same key gets its own result.
    assert redeem(ready, key=2, account="d@example.com", idempotency_key="k2").redeemed


def test_a_decision_that_stops_early_reads_nothing_it_does_not_need(ready: sqlite3.Connection) -> None:
    """Outside PostgreSQL's pipeline the reads a redemption asks for run only when read
    (backends.ask): a replay reads the campaign and the idempotency key only, not the
    activation record, its SKU or the account's history (the writer's time, on SQLite)."""
    redeem(ready, key=1, idempotency_key="form-1")
    statements: list[str] = []
    ready.set_trace_callback(statements.append)
    try:
        assert redeem(ready, key=1, idempotency_key="form-1").replayed
    finally:
        ready.set_trace_callback(None)
    reads = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2 and "FROM campaigns" in reads[0] and "idempotency_key" in reads[1], reads


def test_bad_input_names_every_field() -> None:
    request = RedeemRequest(campaign="office365-xbox-gold-2013", account_email="nope", product_key="123",
                            terms_accepted=True, declared_country="XX")
    with pytest.raises(InputError) as info:
        request.normalized()
    assert {e.field for e in info.value.errors} == {"account_email", "product_key", "declared_country"}


def test_the_schema_refuses_a_second_code_for_an_account_even_if_checks_were_bypassed(ready: sqlite3.Connection) -> None:
    assert redeem(ready, key=1).redeemed
    red = one(ready, "SELECT * FROM redemptions")
    with pytest.raises(sqlite3.IntegrityError):
        ready.execute(
            "INSERT INTO redemptions (campaign_id, account_email, slot, product_key, code_id, terms_url,"
            " terms_accepted_at, redeemed_at) VALUES (:c, :a, 1, 'OTHERKEY', 2, 't', :t, :t)",
            {"c": red["campaign_id"], "a": ANN, "t": red["redeemed_at"]})
    with pytest.raises(sqlite3.IntegrityError):
        ready.execute(
            "INSERT INTO redemptions (campaign_id, account_email, slot, product_key, code_id, terms_url,"
            " terms_accepted_at, redeemed_at) VALUES (:c, 'x@example.com', 1, 'OTHERKEY', :code, 't', :t, :t)",
            {"c": red["campaign_id"], "code": red["code_id"], "t": red["redeemed_at"]})


def test_a_stale_count_is_stopped_by_the_schema_and_logged_as_r_x6(ready: sqlite3.Connection,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """If the per-account count were ever stale (a race the lock should prevent), the UNIQUE
    (campaign, account, slot) constraint refuses the insert; the claimed code is rolled back."""
    import promo.redemption
    assert redeem(ready, key=1).redeemed
    monkeypatch.setattr(promo.redemption, "prior_redemptions", lambda *args: (0, False, None))
    second = redeem(ready, key=2)
    assert not second.redeemed and second.decision.rules == ["R-X6"]
    assert one(ready, "SELECT COUNT(*) FROM redemptions")[0] == 1
    assert one(ready, "SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL")[0] == 1
    assert one(ready, "SELECT COUNT(*) FROM outbox")[0] == 1
    assert one(ready, "SELECT outcome FROM redemption_attempts ORDER BY id DESC LIMIT 1")[0] == "refused"
    assert_chain_verifies(ready)


# ---- R-X5: the account the subscription is tied to. A key whose activation record names no
# account is not granted to whoever comes first: it goes to manual review (R-X11, R-X12).

def test_a_key_whose_record_names_no_account_is_not_granted_outright(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", None)])
    add_codes(conn, stored, 3)
    result = redeem(conn, key=1)
    assert not result.redeemed and result.decision.rules == ["R-X5"]
    assert [f.reason for f in result.decision.failures] == ["key_not_bound"]
    assert "manual review" in result.decision.failures[0].message
    assert one(conn, "SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL")[0] == 0
    assert one(conn, "SELECT COUNT(*) FROM outbox")[0] == 0
    attempt = one(conn, "SELECT * FROM redemption_attempts")
    assert attempt["failed_rules"] == " R-X5 " and attempt["guess_failure"] == 0  # a real key, not a guess


def test_the_account_named_in_the_record_redeems_its_key(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", ANN)])
    add_codes(conn, stored, 1)
    assert redeem(conn, key=1, account="bo@example.com").decision.rules == ["R-X5"]
    assert redeem(conn, key=1, account=ANN).redeemed


def test_a_campaign_that_allows_unbound_keys_grants_them(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", None)])
    add_codes(conn, stored, 1)
    allow_unbound_keys(conn)
    assert redeem(conn, key=1, account="anyone@example.com").redeemed


# ---- R-X3: the military appreciation edition, with the catalog as `promo migrate` loads it

@pytest.mark.parametrize("country", ["DK", "NO", "SE", "AR", "ZA", "TW"])
def test_the_military_edition_is_redeemed_where_the_old_catalog_refused_it(
        conn: sqlite3.Connection, stored: StoredCampaign, country: str) -> None:
    add_activations(conn, [(1, "O365-HOME-MIL", country, ANN)])
    add_codes(conn, stored, 1)
    assert redeem(conn, key=1).redeemed


def test_promo_migrate_drops_the_old_unsourced_country_list(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    from promo.catalog import get_sku, shipped_catalog, upsert_skus

    with transaction(conn):  # a database from before: the military edition limited to seven countries
        conn.executemany("INSERT INTO sku_countries (sku, country) VALUES ('O365-HOME-MIL', ?)",
                         [(c,) for c in ("BE", "DE", "ES", "GB", "IT", "KR", "US")])
    assert get_sku(conn, "O365-HOME-MIL").countries is not None
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())  # what `promo migrate` does after the schema
    assert get_sku(conn, "O365-HOME-MIL").countries is None


# ---- R-X1 / R-X2 on stored evidence: a bare day in the campaign's zone, two countries

@pytest.mark.parametrize(("purchased", "activated", "redeemed"), [
    ("2013-08-02", "2013-08-01T23:30:00Z", True),  # 01:30 on 2013-08-02 in Copenhagen: same day
    ("2013-08-02", "2013-08-01T22:00:00Z", True),  # 00:00 local
    ("2013-08-02", "2013-08-01T21:59:59Z", False),  # 23:59:59 on 2013-08-01 local: before the purchase
    ("2013-08-01T21:59:59Z", "2013-08-01", True),  # bought 23:59:59 local on the day of activation
    ("2013-08-01T23:30:00Z", "2013-08-01", False),  # bought 01:30 local on 2013-08-02, "activated" 2013-08-01
])
def test_stored_dates_are_ordered_in_the_campaigns_zone(conn: sqlite3.Connection, stored: StoredCampaign,
                                                       purchased: str, activated: str, redeemed: bool) -> None:
    import_activations(conn, catalog=load_catalog(conn), now=DURING, source=csv_bytes(
        ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
        [[product_key(1), "O365-HOME-ESD", "DK", purchased, activated, ANN]]))
    add_codes(conn, stored, 1)
    result = redeem(conn, key=1)
    assert result.redeemed is redeemed
    if not redeemed:
        assert [(f.rule, f.reason) for f in result.decision.failures] == [("R-X1", "activation_before_purchase")]


@pytest.mark.parametrize(("bought", "activated", "reasons"), [
    ("DK", "NO", []),
    ("DK", "US", ["activation_country_not_eligible"]),
    ("US", "DK", ["purchase_country_not_eligible"]),
])
def test_a_record_with_two_countries_is_checked_on_both(conn: sqlite3.Connection, stored: StoredCampaign,
                                                        bought: str, activated: str, reasons: list[str]) -> None:
    import_activations(conn, catalog=load_catalog(conn), now=DURING, source=csv_bytes(
        ["product_key", "sku", "purchase_country", "activation_country", "purchased_at", "activated_at", "account_email"],
        [[product_key(1), "O365-HOME-ESD", bought, activated, "2013-08-01", "2013-08-02", ANN]]))
    add_codes(conn, stored, 1)
    result = redeem(conn, key=1)
    assert [f.reason for f in result.decision.failures] == reasons
    assert result.redeemed is (not reasons)


def test_replay_orders_bare_days_in_the_edited_campaigns_zone(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    """The console's replay judges recorded claims with the edited rules: moving the campaign to
    UTC puts a 01:30-Copenhagen activation on the day before its purchase day (R-X1)."""
    from promo.replay import replay

    import_activations(conn, catalog=load_catalog(conn), now=DURING, source=csv_bytes(
        ["product_key", "sku", "purchase_country", "activation_country", "purchased_at", "activated_at", "account_email"],
        [[product_key(1), "O365-HOME-ESD", "DK", "NO", "2013-08-02", "2013-08-01T23:30:00Z", ANN]]))
    add_codes(conn, stored, 1)
    assert redeem(conn, key=1).redeemed
    assert replay(conn, stored.id, stored.campaign).changed == 0
    in_utc = replay(conn, stored.id, replace(stored.campaign, timezone="UTC", eligibility=replace(
        stored.campaign.eligibility, tz=ZoneInfo("UTC"))))
    assert (in_utc.changed, in_utc.newly_refused) == (1, 1) and in_utc.examples[0].proposed == ("R-X1",)
    without_no = replay(conn, stored.id, replace(stored.campaign, countries=tuple(c for c in stored.campaign.countries
                                                                                    if c != "NO")))
    assert without_no.newly_refused == 1 and without_no.examples[0].proposed == ("R-X2",)  # the activation country
