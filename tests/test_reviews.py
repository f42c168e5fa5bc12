"""Manual review (R-X11, R-X12): receipts checked by content, decisions in one transaction."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from promo.activations import Activation
from promo.audit import verify_chain
from promo.campaign_store import StoredCampaign
from promo.db import transaction
from promo.errors import InputError
from promo.reviews import NotAllowed, approve, get_claim, pending_claims, reject, store_receipt, submit_claim
from tests.conftest import DURING, product_key
from tests.test_redemption import add_codes

PDF = b"%PDF-1.4\n% a receipt\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def claim(conn: sqlite3.Connection, tmp_path: Path, account: str = "ann@example.com", key: int = 1, ip: str = "192.0.2.1") -> int:
    name, kind = store_receipt(tmp_path / "receipts", PDF, 1_000_000)
    evidence = Activation(product_key(key).replace("-", ""), "O365-HOME-ESD", "DK", date(2013, 8, 1), date(2013, 8, 2), None)
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
    assert verify_chain(conn).ok


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
