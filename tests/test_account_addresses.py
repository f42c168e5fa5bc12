"""One account is one mailbox, wherever an address enters: consumer sign-in, staff sign-in
and staff creation, nonprofit representatives, activation files (console, API, CLI), the
CLI's redeem and staff commands. And sub-addresses of an account that already redeemed are
held for manual review (R-X12), not granted."""

from __future__ import annotations

import re
import sqlite3

import pytest
from starlette.testclient import TestClient

from promo.campaign_store import StoredCampaign
from tests.support.cli import Cli
from tests.support.console import post_form, signed_in
from tests.support.database import product_key
from tests.support.invariants import assert_chain_verifies
from tests.support.mailserver import MailServer
from tests.support.redemption import add_activations, add_codes, redeem
from tests.support.web import (
    ANN,
    follow_link,
    hidden,
    redeem_form,
    refused_for_nul,
    sign_in,
    submit,
    text_of,
    wait_for_mail,
    wait_for_mail_to,
)

HOSTILE = ["alice(2)@example.com", "x<mallory@evil.example>", '"a b"@example.com', "x\x00y@example.com",
           "ann@example.com\r\nRCPT TO:<mallory@evil.example>", "x\ry@example.com", "an n@example.com",
           "ann@example.com, mallory@evil.example"]


def outbox_and_tokens(conn: sqlite3.Connection) -> tuple[int, int]:
    return conn.execute("SELECT (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM signin_tokens)").fetchone()


def test_the_sign_in_form_refuses_addresses_outside_the_grammar_in_the_readers_language(
        client: TestClient, shop: sqlite3.Connection) -> None:
    client.get("/language?lang=da&next=/")
    for address in HOSTILE:
        form = client.get("/signin")
        response = client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": address, "next": "/"})
        if "\x00" in address:  # refused where every form is read, before the grammar (tests/test_nul_refused.py)
            assert refused_for_nul(response, {"email": address})
            continue
        assert response.status_code == 422, address
        assert 'aria-invalid="true" aria-describedby="email-error"' in response.text
        assert re.search(r'id="email-error" role="alert">Skriv e-mailadressen, som din mailudbyder skriver den', response.text)
    assert tuple(outbox_and_tokens(shop)) == (0, 0)  # no email to anyone, no sign-in started


def test_an_international_domain_is_one_account_in_its_idna_form_and_the_mail_goes_there(
        client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    account = "bob@xn--bcher-kva.example"
    for typed in ("Bob@Bücher.example", "bob@BÜCHER.EXAMPLE", "bob@xn--bcher-kva.example"):
        form = client.get("/signin")
        sent = client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": typed, "next": "/"})
        assert sent.status_code == 303
    mails = wait_for_mail(smtp, 3)
    assert smtp.handler.rcpt_to == [account] * 3  # RCPT TO is the account, byte for byte
    assert {m["To"] for m in mails} == {account}
    assert [r[0] for r in shop.execute("SELECT DISTINCT account_email FROM signin_tokens")] == [account]
    link = re.search(r"https?://testserver(/signin/\S+)", text_of(mails[-1]))
    assert link
    follow_link(client, link.group(1))
    assert shop.execute("SELECT account_email FROM sessions").fetchone()[0] == account


def test_staff_sign_in_and_staff_creation_use_the_same_grammar(client: TestClient, shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "admin")
    for address in ("x<mallory@evil.example>", "alice(2)@example.com"):
        added = post_form(client, "/console/staff", {"email": address, "role": "marketer", "password": "a long passphrase"})
        assert added.status_code == 422 and "email: the part before @ may hold only" in added.text
    assert shop.execute("SELECT COUNT(*) FROM staff").fetchone()[0] == 1
    client.cookies.clear()
    form = client.get("/staff/signin")
    refused = client.post("/staff/signin", data={"csrf": hidden(form.text, "csrf"), "email": "admin@example.com (me)",
                                                 "password": "whatever it is"})
    assert refused.status_code == 422 and "email: the part after @ is not a domain name" in refused.text
    assert shop.execute("SELECT COUNT(*) FROM staff_signin_attempts").fetchone()[0] == 1  # only the admin's own sign-in


def test_representatives_are_refused_outside_the_grammar(client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    from datetime import UTC, datetime

    from tests.support.nonprofit import HOLDER, as_consumer, install_program, register

    install_program(shop, keys_per_product=1, now=datetime.now(UTC))
    as_consumer(client, smtp, HOLDER)
    org_path = register(client).headers["location"]
    signed_in(client, shop, "marketer")
    assert post_form(client, f"/console/nonprofit/organisations/{org_path.rsplit('/', 1)[1]}/approve", {}).status_code == 303
    as_consumer(client, smtp, HOLDER)
    for address in HOSTILE[:3]:
        page = client.get(org_path)
        issued = client.post(f"{org_path}/codes", data={"csrf": hidden(page.text, "csrf"), "first_name": "Rita",
                                                        "last_name": "Rep", "email": address})
        assert issued.status_code == 422 and "Enter an email address, such as name@example.org." in issued.text
    assert shop.execute("SELECT COUNT(*) FROM validation_codes").fetchone()[0] == 0


def test_activation_files_name_the_line_of_an_address_outside_the_grammar(client: TestClient, shop: sqlite3.Connection) -> None:
    from tests.support.console import new_token

    signed_in(client, shop, "marketer")
    token = new_token(client)
    client.cookies.clear()
    body = (f"product_key,sku,country,purchased_at,activated_at,account_email\n"
            f"{product_key(90)},O365-HOME-ESD,DK,2013-08-01,2013-08-02,alice(2)@example.com\n"
            f"{product_key(91)},O365-HOME-ESD,DK,2013-08-01,2013-08-02,Bob@Bücher.example\n").encode()
    response = client.post("/api/v1/activations", content=body, headers={"Authorization": f"Bearer {token}",
                                                                          "Content-Type": "text/csv"})
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert [(e["line"], e["field"]) for e in response.json()["errors"]] == [(2, "account_email")]
    assert shop.execute("SELECT COUNT(*) FROM activations WHERE product_key LIKE 'PK%9_'").fetchone()[0] == 0


def test_the_command_line_refuses_addresses_outside_the_grammar(bare_cli: Cli) -> None:
    cli = bare_cli
    assert cli("migrate").returncode == 0
    redeemed = cli("redeem", "--campaign", "x", "--account", "x<mallory@evil.example>", "--product-key", product_key(1),
                   "--accept-terms")
    assert redeemed.returncode == 2 and "account_email: the part before @" in redeemed.stderr
    cli.env["PROMO_STAFF_PASSWORD"] = "a long passphrase"
    staff = cli("staff", "add", "alice(2)@example.com", "--role", "admin")
    assert staff.returncode == 2 and "email: the part before @" in staff.stderr
    path = cli.write("activations.csv", "product_key,sku,country,purchased_at,activated_at,account_email\n"
                                        f"{product_key(1)},O365-HOME-ESD,DK,2013-08-01,2013-08-02,\"a b\"@example.com\n")
    imported = cli("import-activations", path)
    assert imported.returncode == 2 and "line 2: account_email: the part before @" in imported.stderr


# ---- sub-addresses (R-X12)

def test_a_sub_address_of_an_account_that_redeemed_is_held_for_review_not_granted(conn: sqlite3.Connection,
                                                                                    stored: StoredCampaign) -> None:
    # Each key is bound to the address that redeems it (R-X5): only the mailbox rule is at stake.
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "ann+promo@example.com"), (2, "O365-UNI-FPP", "NO", "ann@example.com"),
                           (3, "O365-HOME-ESD", "DK", "ann+other@example.com"),
                           (4, "O365-HOME-ESD", "DK", "ann+promo+2@example.com")])
    add_codes(conn, stored, 10)
    assert redeem(conn, 1, "ann+promo@example.com").redeemed
    for account, key in (("ann@example.com", 2), ("Ann+Other@Example.com", 3), ("ann+promo+2@example.com", 4)):
        held = redeem(conn, key, account)
        assert not held.redeemed and [(f.rule, f.reason) for f in held.decision.failures] == [("R-X12", "held_for_review")]
    again = redeem(conn, 2, "ann@example.com")  # asking again adds no second claim
    assert [f.reason for f in again.decision.failures] == ["held_for_review"]
    claims = conn.execute("SELECT account_email, product_key, receipt_file, status FROM review_claims ORDER BY id").fetchall()
    assert [tuple(c) for c in claims] == [("ann@example.com", product_key(2).replace("-", ""), None, "pending"),
                                          ("ann+other@example.com", product_key(3).replace("-", ""), None, "pending"),
                                          ("ann+promo+2@example.com", product_key(4).replace("-", ""), None, "pending")]
    assert conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 1
    assert_chain_verifies(conn)


def test_a_held_claim_keeps_where_the_customer_lives_through_its_approval(conn: sqlite3.Connection,
                                                                           stored: StoredCampaign) -> None:
    """R-X13: bought in Denmark, living in Korea, held as a sub-address (R-X12): the approved
    reward names Korea's sponsor and law, as the request would have."""
    from datetime import UTC, datetime

    from promo.db import transaction
    from promo.reviews import approve, pending_claims
    from promo.rewards import get_reward

    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "ann@example.com"), (2, "O365-HOME-ESD", "DK", "ann+kr@example.com")])
    add_codes(conn, stored, 10)
    assert redeem(conn, 1, "ann@example.com").redeemed
    held = redeem(conn, 2, "ann+kr@example.com", residence_country="KR")
    assert [f.reason for f in held.decision.failures] == ["held_for_review"]
    claim = pending_claims(conn).items[0]
    assert claim.residence_country == "KR"
    with transaction(conn):
        result = approve(conn, claim.id, reviewer="support@example.com", now=datetime(2013, 9, 2, tzinfo=UTC), ip=None)
    assert result.redeemed
    reward = get_reward(conn, result.redemption_id)
    assert reward is not None and reward.residence == "KR"
    assert stored.campaign.sponsor_for(reward.residence).region == "Korea"


def test_other_mailboxes_are_not_held(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "ann@example.com"), (2, "O365-HOME-ESD", "DK", "ann+x@example.org"),
                           (3, "O365-HOME-ESD", "DK", "anna+x@example.com"), (4, "O365-HOME-ESD", "DK", "ann.lee+x@example.com")])
    add_codes(conn, stored, 10)
    assert redeem(conn, 1, "ann@example.com").redeemed
    # Another domain, a longer local part, a name that only starts like it: other mailboxes.
    for key, account in ((2, "ann+x@example.org"), (3, "anna+x@example.com"), (4, "ann.lee+x@example.com")):
        assert redeem(conn, key, account).redeemed, account
    assert conn.execute("SELECT COUNT(*) FROM review_claims").fetchone()[0] == 0


def test_a_held_sub_address_is_reviewed_and_approved_over_http(client: TestClient, smtp: MailServer,
                                                               shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp, ANN))
    assert submit(client, redeem_form(client), product_key(1)).status_code == 303
    client.cookies.clear()
    follow_link(client, sign_in(client, smtp, "ann+promo@example.com"))
    held = submit(client, redeem_form(client), product_key(3), country="NO")
    assert held.status_code == 202  # accepted: a person decides (R-X12)
    assert "An address of the same mailbox has already received this offer" in held.text and "R-X12" in held.text
    assert shop.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 1

    signed_in(client, shop, "support")
    queue = client.get("/review/").text
    assert "ann+promo@example.com" in queue and "ann@example.com, an address of the same mailbox, already redeemed" in queue
    claim_id = shop.execute("SELECT id FROM review_claims").fetchone()[0]
    page = client.get(f"/review/{claim_id}")
    assert page.status_code == 200 and "held by the redemption (R-X12)" in page.text and "/receipt" not in page.text
    assert client.get(f"/review/{claim_id}/receipt").status_code == 404
    already = len(smtp.received)
    approved = client.post(f"/review/{claim_id}/approve", data={"csrf": hidden(page.text, "csrf")})
    assert approved.status_code == 303
    mail = wait_for_mail_to(smtp, "ann+promo@example.com", after=already)
    assert "ann+promo@example.com" in smtp.handler.rcpt_to and mail["To"] == "ann+promo@example.com"
    row = shop.execute("SELECT status, redemption_id FROM review_claims").fetchone()
    assert row["status"] == "approved" and row["redemption_id"]
    assert shop.execute("SELECT account_email FROM redemptions WHERE id = ?", (row["redemption_id"],)).fetchone()[0] == \
        "ann+promo@example.com"


def test_sub_addresses_share_their_mailboxs_sign_in_allowance(client: TestClient, smtp: MailServer,
                                                                shop: sqlite3.Connection) -> None:
    from promo.auth import SIGNIN_REQUESTS_PER_WINDOW

    # A victim's mailbox, asked for through its sub-addresses: the cap is the mailbox's.
    addresses = ["victim@example.com", *(f"victim+{n}@example.com" for n in range(SIGNIN_REQUESTS_PER_WINDOW + 3))]
    for address in addresses:
        form = client.get("/signin")
        sent = client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": address, "next": "/"})
        assert (sent.status_code, sent.headers["location"]) == (303, "/signin/sent")  # the same answer every time
    assert shop.execute("SELECT COUNT(*) FROM signin_tokens").fetchone()[0] == SIGNIN_REQUESTS_PER_WINDOW
    form = client.get("/signin")  # other mailboxes are not affected
    client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": "victimised@example.com", "next": "/"})
    client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": "victim@example.org", "next": "/"})
    assert shop.execute("SELECT COUNT(*) FROM signin_tokens").fetchone()[0] == SIGNIN_REQUESTS_PER_WINDOW + 2
    wait_for_mail(smtp, SIGNIN_REQUESTS_PER_WINDOW + 2)


@pytest.mark.parametrize("typed", ["ann@example.com", "ANN+x@Example.COM"])
def test_the_decision_log_finds_an_account_however_it_is_typed(typed: str) -> None:
    from promo.decision_log import AttemptFilter

    assert AttemptFilter.from_query({"account": typed}).account == typed.lower()
    assert AttemptFilter.from_query({"account": "Bob@Bücher.example"}).account == "bob@xn--bcher-kva.example"
