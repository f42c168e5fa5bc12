"""Manual review (R-X11, R-X12): receipts checked by content, decisions in one transaction."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from promo.activations import Activation
from promo.campaign_store import StoredCampaign
from promo.db import transaction
from promo.errors import InputError
from promo.reviews import NotAllowed, approve, get_claim, pending_claims, reject, store_receipt, submit_claim
from tests.support.database import DURING, product_key
from tests.support.invariants import assert_chain_verifies
from tests.support.redemption import add_codes

PDF = b"%PDF-1.4\n% a receipt\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def claim(conn: sqlite3.Connection, tmp_path: Path, account: str = "ann@example.com", key: int = 1, ip: str = "192.0.2.1") -> int:
    name, kind = store_receipt(tmp_path / "receipts", PDF, 1_000_000)
    evidence = Activation(product_key(key).replace("-", ""), "O365-HOME-ESD", "DK", "DK", date(2013, 8, 1), date(2013, 8, 2), None)
    with transaction(conn):
        return submit_claim(conn, campaign="office365-xbox-gold-2013", account_email=account, activation=evidence,
                            receipt_file=name, kind=kind, locale="da", ip=ip, now=DURING)


@pytest.mark.parametrize(("content", "accepted"), [
    (PDF, "application/pdf"), (PNG, "image/png"), (b"\xff\xd8\xff\xe0" + b"\0" * 16, "image/jpeg"),
    (b"<html><script>alert(1)</script>", None), (b"MZ\x90\x00 an .exe renamed receipt.pdf", None), (b"", None),
])
def test_receipts_are_checked_by_content(tmp_path: Path, content: bytes, accepted: str | None) -> None:
    if accepted:
        name, kind = store_receipt(tmp_path, content, 1_000_000)
        assert kind == accepted and (tmp_path / name).read_bytes() == content
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o600"
    else:
        with pytest.raises(InputError, match="receipt"):
            store_receipt(tmp_path, content, 1_000_000)


def test_a_receipt_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="larger than 1 MB"):
        store_receipt(tmp_path, PDF + b"x" * 1_000_000, 1_000_000)


def test_approval_records_the_evidence_and_redeems_in_one_transaction(conn: sqlite3.Connection, stored: StoredCampaign,
                                                                       tmp_path: Path) -> None:
    add_codes(conn, stored, 2)
    claim_id = claim(conn, tmp_path)
    assert [c.id for c in pending_claims(conn).items] == [claim_id]
    with transaction(conn):
        result = approve(conn, claim_id, reviewer="support@example.com", now=DURING, ip=None)
    assert result.redeemed
    assert get_claim(conn, claim_id).status == "approved"
    activation = conn.execute("SELECT account_email, import_batch FROM activations").fetchone()
    assert tuple(activation) == ("ann@example.com", f"review:{claim_id}")  # bound to the claimant
    mail = conn.execute("SELECT recipient, template, locale FROM outbox").fetchone()
    assert tuple(mail) == ("ann@example.com", "reward_code", "da")
    tags = [r[0] for r in conn.execute("SELECT tag FROM audit_events ORDER BY seq")]
    assert tags[-3:] == ["review:claim:submitted", "redemption:code:issued", "review:claim:approved"]
    assert_chain_verifies(conn)


def test_approval_when_the_rules_still_refuse_changes_nothing(conn: sqlite3.Connection, tmp_path: Path) -> None:
    claim_id = claim(conn, tmp_path)  # the pool is empty
    with transaction(conn):
        result = approve(conn, claim_id, reviewer="support@example.com", now=DURING, ip=None)
    assert result.decision.rules == ["STOCK"] and get_claim(conn, claim_id).status == "pending"
    assert conn.execute("SELECT COUNT(*) FROM activations").fetchone()[0] == 0


def test_rejection_emails_the_reason(conn: sqlite3.Connection, tmp_path: Path) -> None:
    claim_id = claim(conn, tmp_path)
    with transaction(conn):
        reject(conn, claim_id, reviewer="support@example.com", reason="The receipt is dated 2012.", now=DURING, ip=None)
    decided = get_claim(conn, claim_id)
    assert (decided.status, decided.reason, decided.reviewer_email) == ("rejected", "The receipt is dated 2012.", "support@example.com")
    mail = conn.execute("SELECT recipient, template, payload FROM outbox").fetchone()
    assert mail["recipient"] == "ann@example.com" and mail["template"] == "review_rejected" and "dated 2012" in mail["payload"]
    with pytest.raises(NotAllowed, match="already rejected"), transaction(conn):
        approve(conn, claim_id, reviewer="support@example.com", now=DURING, ip=None)


def test_nobody_reviews_their_own_claim(conn: sqlite3.Connection, tmp_path: Path) -> None:
    claim_id = claim(conn, tmp_path, account="support@example.com")
    with pytest.raises(NotAllowed, match="own claim"), transaction(conn):
        approve(conn, claim_id, reviewer="support@example.com", now=DURING, ip=None)
    with pytest.raises(NotAllowed, match="own claim"), transaction(conn):
        reject(conn, claim_id, reviewer="support@example.com", reason="Looks fine to me.", now=DURING, ip=None)


def test_one_open_claim_per_key_and_flags_for_the_reviewer(conn: sqlite3.Connection, tmp_path: Path) -> None:
    claim(conn, tmp_path, account="a@example.com", key=1)
    with pytest.raises(InputError, match="already waiting"):
        claim(conn, tmp_path, account="b@example.com", key=1)
    for n, account in enumerate(["c@example.com", "d@example.com", "e@example.com"], start=2):
        claim(conn, tmp_path, account=account, key=n)
    flags = pending_claims(conn).items[-1].flags
    assert "4 accounts from this address" in flags


# ---- R-X5: a key whose activation record names no account comes to review with that cause

def unbound_record(conn: sqlite3.Connection, key: int = 1, *, country: str = "DK") -> None:
    from promo.activations import import_activations
    from promo.catalog import load_catalog
    from tests.support.database import csv_bytes

    import_activations(conn, catalog=load_catalog(conn), now=DURING, source=csv_bytes(
        ["product_key", "sku", "purchase_country", "activation_country", "purchased_at", "activated_at", "account_email"],
        [[product_key(key), "O365-UNI-FPP", country, country, "2013-08-03", "2013-08-04", ""]]))


def test_an_unbound_key_is_reviewed_with_its_cause_and_approval_binds_its_record(
        conn: sqlite3.Connection, stored: StoredCampaign, tmp_path: Path) -> None:
    unbound_record(conn)
    add_codes(conn, stored, 1)
    claim_id = claim(conn, tmp_path)  # the customer states ESD, DK, 2013-08-01: the record says otherwise
    assert get_claim(conn, claim_id).cause == "key_not_bound"
    assert pending_claims(conn).items[0].cause == "key_not_bound"
    with transaction(conn):
        result = approve(conn, claim_id, reviewer="support@example.com", now=DURING, ip=None)
    assert result.redeemed
    record = conn.execute("SELECT sku, account_email, import_batch, purchased_at FROM activations").fetchone()
    assert record["account_email"] == "ann@example.com"  # bound to the claimant
    assert (record["sku"], record["purchased_at"]) == ("O365-UNI-FPP", "2013-08-03")  # the record stays the evidence
    assert record["import_batch"] != f"review:{claim_id}"
    assert conn.execute("SELECT COUNT(*) FROM activations").fetchone()[0] == 1
    approved = json.loads(conn.execute("SELECT data FROM audit_events WHERE tag = 'review:claim:approved'").fetchone()[0])
    assert (approved["cause"], approved["bound_existing_record"]) == ("key_not_bound", True)


def test_a_refused_approval_leaves_an_unbound_record_unbound(conn: sqlite3.Connection, tmp_path: Path) -> None:
    unbound_record(conn)
    claim_id = claim(conn, tmp_path)  # the pool is empty
    with transaction(conn):
        assert approve(conn, claim_id, reviewer="support@example.com", now=DURING, ip=None).decision.rules == ["STOCK"]
    assert conn.execute("SELECT account_email FROM activations").fetchone()[0] is None
    assert get_claim(conn, claim_id).status == "pending"


def test_a_claim_without_a_record_keeps_the_old_cause(conn: sqlite3.Connection, tmp_path: Path) -> None:
    assert get_claim(conn, claim(conn, tmp_path)).cause == "no_activation_record"


def test_keys_that_can_be_redeemed_directly_are_not_reviewed(conn: sqlite3.Connection, tmp_path: Path) -> None:
    from promo.activations import import_activations
    from promo.catalog import load_catalog
    from tests.support.database import csv_bytes
    from tests.support.redemption import allow_unbound_keys

    import_activations(conn, catalog=load_catalog(conn), now=DURING, source=csv_bytes(
        ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
        [[product_key(1), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", "bo@example.com"]]))
    with pytest.raises(InputError, match="redeem it directly"):
        claim(conn, tmp_path, key=1)  # bound: its account redeems it
    unbound_record(conn, key=2)
    allow_unbound_keys(conn)
    with pytest.raises(InputError, match="redeem it directly"):
        claim(conn, tmp_path, key=2)  # the campaign lets anyone redeem an unbound key
