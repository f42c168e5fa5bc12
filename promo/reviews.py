"""Manual review (R-X11 proof of purchase, R-X12 fraud): claims with a receipt, decided by
support or an admin. A claim comes for one of two causes: the key has no activation record
(R-X11), or its record names no account (R-X5, in a campaign that does not allow unbound keys).

Approval writes the activation record (or binds the existing one) to the account and runs the
redemption in the same transaction, so the code and its email commit together. Rejection emails the reason.
Nobody reviews their own claim. Receipts are checked by content and kept outside the web root.

A claim can also be held by the redemption itself (R-X12, promo/redemption.py): an address
that shares its mailbox with an account that already redeemed the campaign (a sub-address,
promo/identifiers.py). It has an activation record and no receipt; approving it grants the
reward to that address.
"""

from __future__ import annotations

import ipaddress
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from promo.activations import Activation, get_activation
from promo.audit import append_event
from promo.campaign_store import get_campaign_of
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.i18n import N_, Phrase
from promo.identifiers import mask_product_key
from promo.outbox import enqueue
from promo.paging import Keyset, Page
from promo.redemption import KEY_NOT_BOUND, RedeemRequest, RedemptionResult, mailbox_sibling, redeem_unit
from promo.staff import POLICY
from promo.timeutil import db_time, from_db_time, moment_from_db, moment_text, moment_to_db

RECEIPT_TYPES = {b"%PDF-": "application/pdf", b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
SUSPICIOUS_ACCOUNTS_PER_IP = 3
REVIEWER_ROLES = POLICY.review_claims  # the role policy (promo/staff.py); views/review.py guards with it
# Why a claim is reviewed: the reason the redemption gave (review_claims.cause).
NO_ACTIVATION_RECORD = "no_activation_record"


def receipt_type(head: bytes) -> str:
    """The receipt's type from its first bytes (never from its name or declared type)."""
    for magic, kind in RECEIPT_TYPES.items():
        if head.startswith(magic):
            return kind
    raise InputError.one("receipt", "must be a PDF, JPEG or PNG file")


def store_receipt(directory: Path, content: bytes, max_bytes: int) -> tuple[str, str]:
    """Check and save a receipt; returns (file name, type). The name is random."""
    if not content:
        raise InputError.one("receipt", "is required: a photo or scan of your dated receipt (R-X11)")
    if len(content) > max_bytes:
        raise InputError.one("receipt", f"is larger than {max_bytes // 1_000_000} MB")
    kind = receipt_type(content[:16])
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = secrets.token_hex(16)
    path = directory / name
    with open(path, "xb") as handle:
        handle.write(content)
    path.chmod(0o600)
    return name, kind


@dataclass(frozen=True)
class Claim:
    id: int
    campaign: str
    account_email: str
    product_key: str
    sku: str
    country: str
    purchased_at: str
    activated_at: str
    receipt_file: str | None  # None: held by the redemption (R-X12), the activation record is the evidence
    receipt_type: str | None
    locale: str
    status: str
    reason: str | None
    reviewer_email: str | None
    created_at: datetime
    client_ip: str | None
    flags: tuple[str, ...] = ()  # Phrases: English, and the message the reviewer's page translates
    cause: str = NO_ACTIVATION_RECORD
    campaign_id: int = 0
    residence_country: str | None = None  # R-X13, as the request held by the redemption stated it
    decided_at: datetime | None = None


def submit_claim(conn: sqlite3.Connection, *, campaign: str, account_email: str, activation: Any, receipt_file: str,
                 kind: str, locale: str, ip: str | None, now: datetime) -> int:
    """Queue a claim for review (inside a transaction). The claim states the purchase as the
    customer gives it; a key whose record already names an account is not reviewed."""
    stored = get_campaign_of(conn, campaign, PurchaseOffer, what="offer")  # R-X12 reviews claims to an offer
    record = conn.execute("SELECT account_email FROM activations WHERE product_key = :k", {"k": activation.product_key}).fetchone()
    if record is not None and (record["account_email"] is not None or stored.campaign.allow_unbound_keys):
        raise InputError.one("product_key", "this product key has an activation record: redeem it directly")
    cause = NO_ACTIVATION_RECORD if record is None else KEY_NOT_BOUND
    try:
        claim_id = conn.execute(
            "INSERT INTO review_claims (campaign_id, account_email, product_key, sku, country, purchased_at, activated_at,"
            " receipt_file, receipt_type, locale, status, client_ip, created_at, cause)"
            " VALUES (:c, :a, :k, :sku, :country, :p, :act, :f, :t, :l, 'pending', :ip, :now, :cause)",
            {"c": stored.id, "a": account_email, "k": activation.product_key, "sku": activation.sku,
             "country": activation.purchase_country, "p": moment_to_db(activation.purchased_at),
             "act": moment_to_db(activation.activated_at), "f": receipt_file, "t": kind, "l": locale,
             "ip": ip, "now": db_time(now), "cause": cause},
        ).lastrowid
    except sqlite3.IntegrityError:
        raise InputError.one("product_key", "a review of this product key is already waiting") from None
    assert claim_id is not None
    append_event(conn, tag="review:claim:submitted", actor=f"account:{account_email}", subject=f"review:{claim_id}", ip=ip,
                 at=now, data={"campaign": campaign, "product_key": mask_product_key(activation.product_key),
                               "sku": activation.sku, "country": activation.purchase_country, "cause": cause})
    return claim_id


CLAIM_SELECT = (
    "SELECT r.id, c.slug AS campaign, r.account_email, r.product_key, r.sku, r.country, r.purchased_at, r.activated_at,"
    " r.receipt_file, r.receipt_type, r.locale, r.status, r.reason, r.reviewer_email, r.created_at, r.client_ip,"
    " r.campaign_id, r.cause, r.residence_country, r.decided_at"
    " FROM review_claims r JOIN campaigns c ON c.id = r.campaign_id"
)


def is_shared_address(ip: str | None, shared: Sequence[str]) -> bool:
    """Whether `ip` falls in one of the known shared addresses or networks (reviews.shared_addresses:
    a university, an office, a carrier's NAT), where many accounts are expected."""
    if not ip or not shared:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in shared)


def accounts_from_address(conn: sqlite3.Connection, ip: str) -> int:
    """Distinct accounts that asked for a reward or a review from `ip`."""
    return int(conn.execute(
        "SELECT COUNT(DISTINCT account_email) FROM (SELECT account_email FROM redemption_attempts WHERE client_ip = :ip"
        " UNION SELECT account_email FROM review_claims WHERE client_ip = :ip) AS asked", {"ip": ip}).fetchone()[0])


def _flags(conn: sqlite3.Connection, row: sqlite3.Row, shared: Sequence[str]) -> tuple[str, ...]:
    """R-X12 hints for the reviewer: another address of the same mailbox already redeemed,
    many accounts from one address (unless it is a known shared one), one key tried by many.
    The claim holds the client's IP only (no postal address), so "one address" is the IP."""
    flags: list[str] = []
    sibling = mailbox_sibling(conn, row["campaign_id"], row["account_email"])
    if sibling:
        flags.append(Phrase(N_("%(address)s, an address of the same mailbox, already redeemed this offer"), address=sibling))
    ip = row["client_ip"]
    if ip and not is_shared_address(ip, shared):
        accounts = accounts_from_address(conn, ip)
        if accounts > SUSPICIOUS_ACCOUNTS_PER_IP:
            flags.append(Phrase(N_("%(n)s accounts from this address"), n=accounts))
    tried = conn.execute("SELECT COUNT(DISTINCT account_email) FROM redemption_attempts WHERE product_key = :k",
                         {"k": row["product_key"]}).fetchone()[0]
    if tried > 1:
        flags.append(Phrase(N_("this key was tried by %(n)s accounts"), n=tried))
    return tuple(flags)


def claim_of_row(row: sqlite3.Row, flags: tuple[str, ...] = ()) -> Claim:
    return Claim(
        id=row["id"], campaign=row["campaign"], account_email=row["account_email"], product_key=row["product_key"],
        sku=row["sku"], country=row["country"], purchased_at=row["purchased_at"], activated_at=row["activated_at"],
        receipt_file=row["receipt_file"], receipt_type=row["receipt_type"], locale=row["locale"], status=row["status"],
        reason=row["reason"], reviewer_email=row["reviewer_email"], created_at=from_db_time(row["created_at"]),
        client_ip=row["client_ip"], flags=flags, cause=row["cause"], campaign_id=row["campaign_id"],
        residence_country=row["residence_country"],
        decided_at=from_db_time(row["decided_at"]) if row["decided_at"] else None)


def _claim(conn: sqlite3.Connection, row: sqlite3.Row, shared: Sequence[str] = ()) -> Claim:
    return claim_of_row(row, _flags(conn, row, shared))


def pending_claims(conn: sqlite3.Connection, keyset: Keyset | None = None, *, shared: Sequence[str] = ()) -> Page[Claim]:
    """Claims waiting for a decision, oldest first, a page at a time. `shared`: the known shared
    addresses, which raise no "many accounts" flag."""
    keyset = keyset or Keyset(descending=False)
    condition, order, params = keyset.sql("r.id")
    rows = conn.execute(CLAIM_SELECT + f" WHERE r.status = 'pending' AND {condition} ORDER BY {order} LIMIT :keyset_limit",
                        params).fetchall()  # fixed clauses from Keyset; values are parameters
    return keyset.page([_claim(conn, r, shared) for r in rows], lambda claim: claim.id)


def get_claim(conn: sqlite3.Connection, claim_id: int, *, shared: Sequence[str] = ()) -> Claim:
    row = conn.execute(CLAIM_SELECT + " WHERE r.id = :id", {"id": claim_id}).fetchone()
    if row is None:
        raise NotFound("review claim", str(claim_id))
    return _claim(conn, row, shared)


@dataclass(frozen=True)
class ClaimEvidence:
    """A claim as the reviewer sees it: with its key's activation record, when the key has one
    (unbound, R-X5; held by the redemption, R-X12; or recorded since the claim was made)."""

    claim: Claim
    record: Activation | None

    @property
    def masked_key(self) -> str:
        return mask_product_key(self.claim.product_key)

    def comparison(self) -> list[tuple[str, str, str, bool]]:
        """(fact, as recorded, as the customer states, whether they differ), for the facts
        both hold; empty without a record. The fact's name is a message the page translates."""
        if self.record is None:
            return []
        record, claim = self.record, self.claim
        facts = [(N_("Product"), record.sku, claim.sku),
                 (N_("Bought in"), record.purchase_country, claim.country),
                 (N_("Bought"), moment_text(record.purchased_at), moment_text(moment_from_db(claim.purchased_at))),
                 (N_("Activated"), moment_text(record.activated_at), moment_text(moment_from_db(claim.activated_at)))]
        return [(name, recorded, stated, recorded != stated) for name, recorded, stated in facts]


def claim_evidence(conn: sqlite3.Connection, claim_id: int, *, shared: Sequence[str] = ()) -> ClaimEvidence:
    claim = get_claim(conn, claim_id, shared=shared)
    return ClaimEvidence(claim, get_activation(conn, claim.product_key))


def next_pending(conn: sqlite3.Connection, after_id: int) -> int | None:
    """The claim to open after deciding one: the next waiting one in queue order, else the oldest."""
    row = conn.execute("SELECT id FROM review_claims WHERE status = 'pending' ORDER BY id > :after DESC, id LIMIT 1",
                       {"after": after_id}).fetchone()
    return int(row["id"]) if row else None


class NotAllowed(Exception):
    """The reviewer may not decide this claim (their own, or already decided). Its message is
    one of the marked sentences below, which the reviewer's page translates."""


ALREADY_DECIDED = {"approved": N_("This claim was already approved: a claim is decided once."),
                   "rejected": N_("This claim was already rejected: a claim is decided once.")}
OWN_CLAIM = N_("You cannot decide this claim: nobody reviews their own claim.")
REASON_NEEDED = N_("To reject, say why in a few words (up to 1,000 characters): the customer receives the reason.")


def _open_claim(conn: sqlite3.Connection, claim_id: int, reviewer: str) -> Claim:
    claim = get_claim(conn, claim_id)
    if claim.status != "pending":
        raise NotAllowed(ALREADY_DECIDED.get(claim.status, f"this claim was already {claim.status}"))
    if claim.account_email == reviewer:
        raise NotAllowed(OWN_CLAIM)
    return claim


def approve(conn: sqlite3.Connection, claim_id: int, *, reviewer: str, now: datetime, ip: str | None) -> RedemptionResult:
    """Record the evidence and redeem, in the caller's transaction. If the rules still refuse
    (say, no codes left), nothing is written and the claim stays pending."""
    claim = _open_claim(conn, claim_id, reviewer)
    conn.execute("SAVEPOINT approve")
    # The key's own record, if it has one, stays the evidence: approving binds it to the account (R-X5).
    # A claim held by the redemption (R-X12) has its record, bound to the account that asked.
    bound = conn.execute("UPDATE activations SET account_email = :e WHERE product_key = :k AND account_email IS NULL",
                         {"e": claim.account_email, "k": claim.product_key}).rowcount
    if not bound and not conn.execute("SELECT 1 FROM activations WHERE product_key = :k", {"k": claim.product_key}).fetchone():
        conn.execute(
            "INSERT INTO activations (product_key, sku, country, activation_country, purchased_at, activated_at, account_email,"
            " imported_at, import_batch) VALUES (:k, :sku, :c, :c, :p, :a, :e, :now, :batch)",
            {"k": claim.product_key, "sku": claim.sku, "c": claim.country, "p": claim.purchased_at, "a": claim.activated_at,
             "e": claim.account_email, "now": db_time(now), "batch": f"review:{claim_id}"},
        )
    request = RedeemRequest(campaign=claim.campaign, account_email=claim.account_email, product_key=claim.product_key,
                            terms_accepted=True, declared_country=claim.country, client_ip=claim.client_ip, locale=claim.locale,
                            residence_country=claim.residence_country)
    result = redeem_unit(conn, request, now, reviewed=True)
    if not result.redeemed:
        conn.execute("ROLLBACK TO approve")
        conn.execute("RELEASE approve")
        return result
    conn.execute("UPDATE review_claims SET status = 'approved', reviewer_email = :r, redemption_id = :rid, decided_at = :now"
                 " WHERE id = :id", {"r": reviewer, "rid": result.redemption_id, "now": db_time(now), "id": claim_id})
    append_event(conn, tag="review:claim:approved", actor=f"staff:{reviewer}", subject=f"review:{claim_id}", ip=ip, at=now,
                 data={"redemption": result.redemption_id, "cause": claim.cause, "bound_existing_record": bool(bound)})
    conn.execute("RELEASE approve")
    return result


def reject(conn: sqlite3.Connection, claim_id: int, *, reviewer: str, reason: str, now: datetime, ip: str | None) -> None:
    """Refuse with a reason the consumer receives by email (inside a transaction)."""
    text = (reason or "").strip()
    if not 3 <= len(text) <= 1000:
        raise InputError.one("reason", REASON_NEEDED)
    claim = _open_claim(conn, claim_id, reviewer)
    conn.execute("UPDATE review_claims SET status = 'rejected', reason = :reason, reviewer_email = :r, decided_at = :now"
                 " WHERE id = :id", {"reason": text, "r": reviewer, "now": db_time(now), "id": claim_id})
    enqueue(conn, template="review_rejected", recipient=claim.account_email, subject_ref=f"review:{claim_id}", at=now,
            locale=claim.locale, campaign_id=claim.campaign_id,
            payload={"reason": text, "campaign": claim.campaign, "product_key": mask_product_key(claim.product_key)})
    append_event(conn, tag="review:claim:rejected", actor=f"staff:{reviewer}", subject=f"review:{claim_id}", ip=ip, at=now,
                 data={"reason": text})


DECISIONS = ("approve", "reject")


def decide(conn: sqlite3.Connection, claim_id: int, decision: str, *, reviewer: str, reason: str, now: datetime,
           ip: str | None) -> RedemptionResult | None:
    """A reviewer's decision in its own transaction: approve (the redemption's result) or reject
    with `reason` (None)."""
    if decision not in DECISIONS:
        raise InputError.one("decision", "must be approve or reject")
    with transaction(conn):
        if decision == "approve":
            return approve(conn, claim_id, reviewer=reviewer, now=now, ip=ip)
        reject(conn, claim_id, reviewer=reviewer, reason=reason, now=now, ip=ip)
        return None
