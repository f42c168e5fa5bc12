"""The redemption: one transaction that decides, claims one code and records everything.

Inside one `BEGIN IMMEDIATE` (one hop to the writer thread) it re-checks every rule
against the purchase evidence, enforces the per-account limit (R-X6) and one redemption
per product key, claims the earliest-expiring valid code (R-X9), records the terms
acceptance (R-X8), and writes the redemption, an outbox row, an audit event and the
decision-log entry together. Refusals are logged the same way. UNIQUE constraints in
the schema are the last line of defence should any check here ever be wrong.

On PostgreSQL transactions run at once (READ COMMITTED), so two requests can both pass a
check before either writes; the loser's INSERT then waits for the winner's COMMIT and
meets its UNIQUE key. The loser's work is undone to its savepoint and decided again: its
new statements see the winner's row, so it gets what SQLite's one writer would have given
(R-X6, R-X5, or the replay of a shared idempotency key), logged like any refusal.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from promo import totals
from promo.activations import activation_of, ask_activation
from promo.activity import count_attempt
from promo.audit import append_event
from promo.backends import RerunTransaction, ask, connection_number, dialect_of, pipelined, recover, settle
from promo.campaign_store import StoredCampaign, ask_campaign, campaign_of, get_campaign
from promo.campaigns.purchase_offer import Claim, PurchaseOffer
from promo.campaigns.rules import CAMPAIGN, STOCK, Decision, Failure
from promo.catalog import ask_sku_of_key, sku_of_key
from promo.codes import WantedCode, ask_claim, claimed
from promo.db import Database, transaction
from promo.email_contexts import register
from promo.identifiers import mailbox_params, mask_code, mask_product_key
from promo.outbox import enqueue
from promo.redemption_request import RedeemRequest as RedeemRequest
from promo.redemption_request import RedemptionResult as RedemptionResult
from promo.reward_email import reward_email_context
from promo.rewards import REWARD_EMAIL
from promo.stock import alert_if_low
from promo.timeutil import db_time, from_db_time, moment_to_db

register(REWARD_EMAIL, reward_email_context)  # the relay reads the reward when sending, never from the outbox
HELD_FOR_REVIEW = "held_for_review"  # R-X12: a sub-address of an account that already redeemed
GUESS_WINDOW = timedelta(hours=1)
# Refusals that a key guesser collects: no such key (R-X11), somebody else's key (R-X5).
_GUESS_RULES = ("R-X11", "R-X5")
# R-X5: a real key whose record names no account is for review, not a sign of guessing.
KEY_NOT_BOUND = "key_not_bound"


async def redeem(db: Database, request: RedeemRequest, now: datetime, *, guess_limit: int | None = None) -> RedemptionResult:
    """Redeem through the store. SQLite: the one writer with group commit, concurrent
    redemptions sharing one COMMIT, each in its own savepoint, each returning only once that
    COMMIT is done. PostgreSQL: each its own transaction, alone in it (a lost race reruns it)."""
    return await db.write_grouped(redeem_unit, request.normalized(), now, guess_limit=guess_limit, alone=not db.groups_writes)


def redeem_sync(conn: sqlite3.Connection, request: RedeemRequest, now: datetime, *,
                guess_limit: int | None = None) -> RedemptionResult:
    """The redemption on a connection (writer thread, CLI, or a worker process).
    `request` must be normalized. Manages its own transaction(s). `guess_limit` caps failed
    key attempts per account and per IP per hour (None: no cap, for support)."""
    for rerun in range(RACE_REDECISIONS + 1):
        try:
            with transaction(conn):  # the last run decides in a savepoint: its fallback refusal needs one
                return redeem_unit(conn, request, now, guess_limit=guess_limit, alone=rerun < RACE_REDECISIONS)
        except RerunTransaction:
            continue  # rolled back: the next run sees the winner's rows
    raise AssertionError("unreachable")


@pipelined  # PostgreSQL's write queues the decision log, audit event and email with one round trip
def redeem_unit(conn: sqlite3.Connection, request: RedeemRequest, now: datetime, *, guess_limit: int | None = None,
                reviewed: bool = False, alone: bool = False) -> RedemptionResult:
    """The redemption inside a transaction the caller holds (alone, or in a group commit).
    `reviewed`: a reviewer approved this claim (R-X12), so it is not held for review again.
    `alone`: nothing else shares the transaction, so where writers run at once (PostgreSQL) a
    lost race reruns the whole of it (RerunTransaction) instead of a savepoint: two round
    trips fewer per redemption (issue 18)."""
    if alone and dialect_of(conn).reruns_transactions:
        try:
            result = _decide_and_record(conn, request, now, guess_limit, reviewed)
            settle(conn)  # a lost race in a statement still queued (pipelined) is caught here, not at COMMIT
            return result
        except sqlite3.IntegrityError as exc:
            if lost_a_race(exc):
                raise RerunTransaction("lost a race to another writer's COMMIT") from exc
            raise
    for redecisions_left in range(RACE_REDECISIONS, -1, -1):
        conn.execute("SAVEPOINT redeem")
        try:
            result = _decide_and_record(conn, request, now, guess_limit, reviewed)
            settle(conn)
        except sqlite3.IntegrityError as exc:
            recover(conn)  # pipelined (PostgreSQL): the server takes statements again after a sync
            conn.execute("ROLLBACK TO redeem")
            conn.execute("RELEASE redeem")
            if redecisions_left and lost_a_race(exc):
                continue  # the winner has committed: deciding again sees its row
            # A schema constraint caught what the checks did not: undo, then refuse and log that.
            if not defends_r_x6(exc):  # another constraint is not the customer's refusal
                raise
            failure = Failure("R-X6", "already_redeemed", "this account or product key has already redeemed this offer")
            stored = get_campaign(conn, request.campaign)
            return _refuse(conn, stored, request, Decision((failure,)), now, sku=None, country=None)
        except BaseException:
            recover(conn)
            conn.execute("ROLLBACK TO redeem")
            conn.execute("RELEASE redeem")
            raise
        conn.execute("RELEASE redeem")
        return result
    raise AssertionError("unreachable")


# How often a redemption that lost a race is decided again. One is what a race needs (the
# second decision sees the winner's row); more cover a loser that then meets another winner.
RACE_REDECISIONS = 3
UNIQUE_VIOLATION = "23505"  # PostgreSQL's sqlstate (ConstraintViolation.sqlstate)


def lost_a_race(exc: sqlite3.IntegrityError) -> bool:
    """A unique key met on PostgreSQL: a transaction running beside this one committed the same
    key after this one's checks read (an INSERT waits for that COMMIT before it fails). On
    SQLite the one writer rules that out: there a violation means a check is wrong."""
    return getattr(exc, "sqlstate", None) == UNIQUE_VIOLATION


# The UNIQUE keys of redemptions that hold R-X5/R-X6 when two transactions pass the checks at
# once: one reward per account and slot, one redemption per product key, one owner per code.
# PostgreSQL names the constraint (ConstraintViolation.constraint); SQLite names the columns.
R_X6_CONSTRAINTS = frozenset({"redemptions_campaign_id_account_email_slot_key",
                              "redemptions_campaign_id_product_key_key", "redemptions_code_id_key"})


def defends_r_x6(exc: sqlite3.IntegrityError) -> bool:
    constraint = getattr(exc, "constraint", None)
    if constraint is not None:
        return constraint in R_X6_CONSTRAINTS
    return str(exc).startswith("UNIQUE constraint failed: redemptions.")


def _decide_and_record(conn: sqlite3.Connection, request: RedeemRequest, now: datetime,
                       guess_limit: int | None, reviewed: bool) -> RedemptionResult:
    # What the checks read is asked for at once and read in the order the rules need it: on
    # PostgreSQL (pipelined) one round trip for all six instead of one each (issue 18).
    asked_campaign = ask_campaign(conn, request.campaign)
    asked_replay = _ask_replay(conn, request) if request.idempotency_key else None
    asked_guesses = (None if guess_limit is None
                     else ask_failed_key_attempts(conn, request, since=now - GUESS_WINDOW, limit=guess_limit))
    asked_activation = ask_activation(conn, request.product_key)
    asked_sku = ask_sku_of_key(conn, request.product_key)
    asked_prior = ask_prior_redemptions(conn, request)
    # A donation program is asked through /nonprofit/, not redeemed: to this, no offer.
    stored = campaign_of(conn, asked_campaign, request.campaign, PurchaseOffer, what="offer")
    campaign = stored.campaign
    if asked_replay is not None:
        replay = _replay_of(asked_replay)
        if replay is not None:
            return replay
    if guess_limit is not None and failed_key_attempts_of(asked_guesses) >= guess_limit:
        # Checked before the key is looked up, so a guesser learns nothing more (R-X12).
        failure = Failure("R-X12", "too_many_attempts", "too many attempts with product keys that could not be "
                          "used; try again in an hour or contact customer service")
        return _refuse(conn, stored, request, Decision((failure,)), now, sku=None, country=None)

    if request.residence_country:  # asked before anything is decided: bad input is not a refusal
        campaign.sponsor_for_residence(request.residence_country)  # InputError (residence_country, R-X13)
    activation = activation_of(asked_activation)
    sku = country = None
    if activation is None:
        decision = Decision(
            (Failure("R-X11", "no_activation_record",
                     "no purchase or activation is recorded for this product key; check the key, "
                     "or keep your dated receipt and ask for a manual review"),)
        ).plus(campaign.request_failures(now, request.terms_accepted))
    else:
        sku, country = activation.sku, activation.purchase_country
        claim = Claim(
            account=request.account_email,
            product_key=request.product_key,
            sku=sku_of_key(conn, asked_sku, activation.sku),
            purchase_country=activation.purchase_country,
            activation_country=activation.activation_country,
            purchased_at=activation.purchased_at,
            activated_at=activation.activated_at,
            declared_country=request.declared_country,
            terms_accepted=request.terms_accepted,
        )
        decision = campaign.evaluate(claim, now)
        if activation.account_email and activation.account_email != request.account_email:
            decision = decision.plus([Failure("R-X5", "key_bound_to_other_account",
                                              "this product key belongs to another account")])
        elif activation.account_email is None and not campaign.allow_unbound_keys:
            # R-X5: nothing ties this key to the signed-in account; its first comer must not
            # simply get the code. A person checks it (R-X11, R-X12): the review queue.
            decision = decision.plus([Failure("R-X5", KEY_NOT_BOUND, "the activation record of this product key names "
                                              "no account, so it needs a manual review: send your dated receipt "
                                              "(R-X11, R-X12)")])

    prior, used, sibling = prior_redemptions(asked_prior)
    if prior >= campaign.limit_per_account:
        decision = decision.plus([Failure("R-X6", "account_limit_reached",
                                          "this account has already received its reward code for this offer")])
    if used:
        decision = decision.plus([Failure("R-X5", "key_already_redeemed",
                                          "this product key has already been used to redeem this offer")])
    if not stored.published:
        decision = decision.plus([Failure(CAMPAIGN, "campaign_not_published", "this offer has not been published")])
    elif stored.paused:
        decision = decision.plus([Failure(CAMPAIGN, "campaign_paused", "this offer is paused for now; try again later")])
    if not decision.eligible:
        return _refuse(conn, stored, request, decision, now, sku=sku, country=country)
    if not reviewed and activation is not None and sibling:
        # Another address of the same mailbox (a sub-address) already has this reward (R-X6):
        # not granted here, held for a person to decide (R-X12).
        _hold_for_review(conn, stored.id, request, activation, now)
        decision = Decision((Failure("R-X12", HELD_FOR_REVIEW, "an address of the same mailbox has already received this "
                                     "offer's reward: this request waits for a manual review, and the decision is emailed"),))
        return _refuse(conn, stored, request, decision, now, sku=sku, country=country)

    wanted = WantedCode(stored.id, campaign.code_expires_at, now)
    # An uncapped count cannot refuse, so the code's claim is asked beside it (issue 18). Should
    # every counter row be held at that moment, taken() waits for one while this claim holds a
    # code: with codes so scarce that another transaction waits for that code while holding a
    # counter row, PostgreSQL ends the cycle as a deadlock, and in_transaction reruns it.
    if campaign.total_cap is None:
        asked_count, asked_code = totals.ask_take(conn, stored.id), ask_claim(conn, wanted)
        counted: int | None = totals.taken(conn, asked_count, stored.id)
    else:  # the cap checked and counted at once (issue 18); the claim only once it passed
        asked_code, counted = None, totals.take(conn, stored.id, cap=campaign.total_cap)
    if counted is None:
        decision = Decision((Failure(STOCK, "total_cap_reached", f"all {campaign.total_cap} rewards of this offer "
                                     "have been given out", {"cap": campaign.total_cap}),))
        return _refuse(conn, stored, request, decision, now, sku=sku, country=country)
    code = claimed(conn, ask_claim(conn, wanted) if asked_code is None else asked_code, wanted)
    if code is None:
        totals.give_back(conn, stored.id, counted)
        if campaign.low_stock_threshold is not None:  # redemptions that crossed it at once on PostgreSQL each
            alert_if_low(conn, stored, now=now)        # saw only its own count: an empty pool still alerts
        decision = Decision((Failure(STOCK, "no_codes_left", "no codes left: every reward code of this offer has been given out"),))
        return _refuse(conn, stored, request, decision, now, sku=sku, country=country)

    residence = residence_of(request, country)
    terms_version = campaign.terms.version if campaign.terms else None  # R-X22: what was accepted
    redemption_id = conn.execute(
        "INSERT INTO redemptions (campaign_id, account_email, slot, product_key, code_id, terms_url,"
        " terms_accepted_at, redeemed_at, client_ip, residence_country, terms_version)"
        " VALUES (:c, :a, :slot, :k, :code, :terms, :now, :now, :ip, :residence, :version)",
        {"c": stored.id, "a": request.account_email, "slot": prior + 1, "k": request.product_key,
         "code": code.id, "terms": campaign.reward.terms_url, "now": db_time(now), "ip": request.client_ip,
         "residence": residence, "version": terms_version},
    ).lastrowid
    assert redemption_id is not None
    if campaign.low_stock_threshold is not None:
        alert_if_low(conn, stored, now=now)
    enqueue(conn, template=REWARD_EMAIL, recipient=request.account_email, subject_ref=f"redemption:{redemption_id}", at=now,
            locale=request.locale, campaign_id=stored.id)
    result = RedemptionResult("redeemed", decision, redemption_id, code.code, code.expires_at)
    append_event(conn, tag="redemption:code:issued", actor=f"account:{request.account_email}",
                 subject=f"redemption:{redemption_id}", ip=request.client_ip, at=now,
                 data={"campaign": campaign.slug, "sku": sku, "country": country,
                       "product_key": mask_product_key(request.product_key), "code": mask_code(code.code),
                       "terms_url": campaign.reward.terms_url, "terms_accepted": True,
                       "terms_version": terms_version, "terms_language": request.locale, "residence_country": residence})
    _log_attempt(conn, stored, request, result, now, sku=sku, country=country)
    return result


def residence_of(request: RedeemRequest, purchase_country: str | None) -> str | None:
    """R-X13: where the customer lives: as given, else the country of purchase (as declared on
    the form, else the activation record's; its purchase_country once records carry both)."""
    return request.residence_country or request.declared_country or purchase_country


def failed_key_attempts(conn: sqlite3.Connection, request: RedeemRequest, *, since: datetime, limit: int) -> int:
    """The most failed key attempts (R-X11, R-X5) in the window, by this account or this IP,
    counted no further than `limit`: partial indexes hold only those attempts, and the count
    stops at the limit, so the check costs the same however many failures an attacker (or
    everyone behind one NAT address) has piled up (issue 14)."""
    return failed_key_attempts_of(ask_failed_key_attempts(conn, request, since=since, limit=limit))


def ask_failed_key_attempts(conn: sqlite3.Connection, request: RedeemRequest, *, since: datetime, limit: int) -> Any:
    return ask(conn, lambda: conn.execute(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM redemption_attempts WHERE guess_failure = 1 AND account_email = :a"
        " AND attempted_at >= :since LIMIT :limit) AS f),"
        " (SELECT COUNT(*) FROM (SELECT 1 FROM redemption_attempts WHERE guess_failure = 1 AND client_ip = :ip"
        " AND attempted_at >= :since LIMIT :limit) AS g)",
        {"a": request.account_email, "ip": request.client_ip, "since": db_time(since), "limit": limit},
    ))


def failed_key_attempts_of(asked: Any) -> int:
    by_account, by_ip = asked.fetchone()
    return max(int(by_account), int(by_ip))  # no IP (CLI, support): client_ip = NULL counts nothing


# Another account of the same mailbox (promo/identifiers.py same_mailbox_key: the local part
# before "+", and the domain) that already redeemed this campaign: two ranges of the
# (campaign, account) unique index, the base address and base+anything. The tail is spelled
# for both stores: PostgreSQL's substr() has no negative start.
_SIBLING_IN = ("SELECT account_email FROM redemptions WHERE campaign_id = {c} AND account_email = :base AND account_email <> :a"
               " UNION ALL SELECT account_email FROM redemptions WHERE campaign_id = {c} AND account_email >= :lo"
               " AND account_email < :hi AND account_email <> :a AND substr(account_email, length(account_email) - :n + 1) = :at_domain"
               " LIMIT 1")
_SIBLING = _SIBLING_IN.format(c=":c")


def mailbox_sibling(conn: sqlite3.Connection, campaign_id: int, account: str) -> str | None:
    """Another account of the same mailbox that already redeemed this campaign, if there is one."""
    row = conn.execute(_SIBLING, {"c": campaign_id, "a": account, **mailbox_params(account)}).fetchone()
    return row[0] if row else None


def _hold_for_review(conn: sqlite3.Connection, campaign_id: int, request: RedeemRequest, activation: Any, now: datetime) -> None:
    """A pending review claim for this key (R-X12), with the activation record as its evidence
    and no receipt; one open claim per key and campaign (a repeated request adds none)."""
    if conn.execute("SELECT 1 FROM review_claims WHERE campaign_id = :c AND product_key = :k AND status = 'pending'",
                    {"c": campaign_id, "k": request.product_key}).fetchone():
        return
    claim_id = conn.execute(
        "INSERT INTO review_claims (campaign_id, account_email, product_key, sku, country, purchased_at, activated_at,"
        " locale, status, client_ip, created_at, cause, residence_country) VALUES (:c, :a, :k, :sku, :country, :p, :act, :l,"
        " 'pending', :ip, :now, :cause, :residence)",
        {"c": campaign_id, "a": request.account_email, "k": request.product_key, "sku": activation.sku, "cause": HELD_FOR_REVIEW,
         "residence": request.residence_country,
         "country": activation.purchase_country, "p": moment_to_db(activation.purchased_at), "act": moment_to_db(activation.activated_at),
         "l": request.locale, "ip": request.client_ip, "now": db_time(now)},
    ).lastrowid
    append_event(conn, tag="review:claim:held", actor=f"account:{request.account_email}", subject=f"review:{claim_id}",
                 ip=request.client_ip, at=now, data={"product_key": mask_product_key(request.product_key), "rule": "R-X12"})


# The statements asked beside the campaign's own row name it by its slug: its id is not read yet.
_CAMPAIGN_ID = "(SELECT id FROM campaigns WHERE slug = :slug)"

_PRIOR = ("SELECT (SELECT COUNT(*) FROM redemptions WHERE campaign_id = {c} AND account_email = :a),"
          " EXISTS (SELECT 1 FROM redemptions WHERE campaign_id = {c} AND product_key = :k),"
          f" ({_SIBLING_IN})").format(c=_CAMPAIGN_ID)


def ask_prior_redemptions(conn: sqlite3.Connection, request: RedeemRequest) -> Any:
    """Ask how many rewards this account has from the campaign (R-X6), whether this product key
    has already redeemed it (R-X5), and another account of the same mailbox that has (R-X6,
    R-X12): one statement on unique indexes; read by prior_redemptions."""
    return ask(conn, lambda: conn.execute(_PRIOR, {"slug": request.campaign, "a": request.account_email,
                                                   "k": request.product_key, **mailbox_params(request.account_email)}))


def prior_redemptions(asked: Any) -> tuple[int, bool, str | None]:
    prior, used, sibling = asked.fetchone()
    return int(prior), bool(used), sibling


def _refuse(conn: sqlite3.Connection, stored: StoredCampaign, request: RedeemRequest, decision: Decision,
            now: datetime, *, sku: str | None, country: str | None) -> RedemptionResult:
    result = RedemptionResult("refused", decision)
    append_event(conn, tag="redemption:claim:refused", actor=f"account:{request.account_email}",
                 subject=f"campaign:{stored.campaign.slug}", ip=request.client_ip, at=now,
                 data={"campaign": stored.campaign.slug, "sku": sku, "country": country,
                       "product_key": mask_product_key(request.product_key),
                       "failures": [f.as_dict() for f in decision.failures]})
    _log_attempt(conn, stored, request, result, now, sku=sku, country=country)
    return result


def _log_attempt(conn: sqlite3.Connection, stored: StoredCampaign, request: RedeemRequest, result: RedemptionResult,
                 now: datetime, *, sku: str | None, country: str | None) -> None:
    conn.execute(  # its id is not read: pipelined, this INSERT costs no round trip of its own
        "INSERT INTO redemption_attempts (campaign_id, account_email, idempotency_key, product_key, sku, country,"
        " outcome, failed_rules, result, redemption_id, attempted_at, client_ip, guess_failure)"
        " VALUES (:c, :a, :ik, :k, :sku, :country, :outcome, :rules, :result, :rid, :now, :ip, :guess)",
        {"c": stored.id, "a": request.account_email, "ik": request.idempotency_key, "k": request.product_key,
         "sku": sku, "country": country, "outcome": result.outcome,
         "rules": "".join(f" {r} " for r in result.decision.rules),
         "result": json.dumps(result.as_dict()), "rid": result.redemption_id, "now": db_time(now),
         "ip": request.client_ip,
         "guess": int(any(f.rule in _GUESS_RULES and f.reason != KEY_NOT_BOUND for f in result.decision.failures))},
    )
    count_attempt(conn, campaign_id=stored.id, outcome=result.outcome, at=now, tz=stored.campaign.tz,
                  shard_of=connection_number(conn),
                  reasons=(f"{f.rule} {f.reason}" for f in result.decision.failures))


_REPLAY = ("SELECT a.result, a.redemption_id, c.code, c.expires_at FROM redemption_attempts a"
           " LEFT JOIN redemptions r ON r.id = a.redemption_id LEFT JOIN reward_codes c ON c.id = r.code_id"
           " WHERE a.campaign_id = " + _CAMPAIGN_ID + " AND a.account_email = :a AND a.idempotency_key = :k")


def _ask_replay(conn: sqlite3.Connection, request: RedeemRequest) -> Any:
    """Ask for the first result for this idempotency key, if there was one (same account only)."""
    return ask(conn, lambda: conn.execute(_REPLAY, {"slug": request.campaign, "a": request.account_email,
                                                    "k": request.idempotency_key}))


def _replay_of(asked: Any) -> RedemptionResult | None:
    row = asked.fetchone()
    if row is None:
        return None
    first = json.loads(row["result"])
    decision = Decision(tuple(Failure(f["rule"], f["reason"], f["message"], f.get("params", {})) for f in first["failures"]))
    return RedemptionResult(
        outcome=first["outcome"],
        decision=decision,
        redemption_id=row["redemption_id"],
        code=row["code"],
        code_expires_at=from_db_time(row["expires_at"]) if row["expires_at"] else None,
        replayed=True,
    )
