"""The `promo` command, run as a real process against a real store (a SQLite file, a PostgreSQL database)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
import tomli_w

from promo.campaigns import shipped_campaign_text
from promo.db import transaction
from promo.outbox import enqueue
from tests.support.cli import PROMO, Cli
from tests.support.database import SLUG, product_key, reward_code
from tests.support.mailserver import MailServer


def test_import_then_export_writes_the_file_back_identically(cli: Cli) -> None:
    path = cli.write("offer.toml", shipped_campaign_text(SLUG))
    imported = cli("campaigns", "import", path)
    assert imported.returncode == 0, imported.stderr
    exported = cli("campaigns", "export", SLUG)
    assert exported.returncode == 0 and exported.stdout == shipped_campaign_text(SLUG)
    assert cli("campaigns", "export", SLUG, "-o", str(cli.dir / "out.toml")).returncode == 0
    assert (cli.dir / "out.toml").read_text(encoding="utf-8") == shipped_campaign_text(SLUG)
    assert cli("campaigns", "import", path).stdout.strip() == f"{SLUG}: unchanged"
    assert SLUG in cli("campaigns", "list").stdout


def test_the_issue_example_evaluates_eligible(cli: Cli) -> None:
    cli("campaigns", "import", "--shipped", SLUG)
    result = cli("evaluate", "--campaign", SLUG, "--sku", "O365-HOME-ESD", "--country", "DK",
                 "--purchased-at", "2013-08-01", "--activated-at", "2013-08-02", "--at", "2013-10-01T12:00:00Z")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"eligible": True, "failed_rules": [], "failures": []}


def test_evaluate_refused_exits_1_with_every_rule(cli: Cli) -> None:
    cli("campaigns", "import", "--shipped", SLUG)
    result = cli("evaluate", "--campaign", SLUG, "--sku", "O365-HOME-MONTHLY", "--country", "US",
                 "--purchased-at", "2013-08-01", "--activated-at", "2013-08-02", "--at", "2013-11-01T00:00:00+01:00")
    assert result.returncode == 1
    assert json.loads(result.stdout)["failed_rules"] == ["R-X2", "R-X4", "R-X7"]


@pytest.mark.parametrize(("purchased", "activated", "code"), [
    ("2013-08-02", "2013-08-01T23:30:00Z", 0),  # issue 15: 01:30 on 2013-08-02 in Copenhagen, the day of purchase
    ("2013-08-02", "2013-08-01T22:00:00Z", 0),  # local midnight
    ("2013-08-02", "2013-08-01T21:59:59Z", 2),  # 23:59:59 on 2013-08-01 local: before the purchase day
    ("2013-08-01T21:59:59Z", "2013-08-01", 0),
    ("2013-08-01T23:30:00Z", "2013-08-01", 2),  # bought 01:30 on 2013-08-02 local
])
def test_evaluate_orders_a_bare_day_in_the_campaigns_zone(cli: Cli, purchased: str, activated: str, code: int) -> None:
    cli("campaigns", "import", "--shipped", SLUG)
    result = cli("evaluate", "--campaign", SLUG, "--sku", "O365-HOME-ESD", "--country", "DK", "--purchased-at", purchased,
                 "--activated-at", activated, "--at", "2013-10-01T12:00:00Z")
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "activated_at: activation" in result.stderr and "in the campaign's zone (Europe/Copenhagen)" in result.stderr


def test_evaluate_takes_the_two_countries_apart(cli: Cli) -> None:
    cli("campaigns", "import", "--shipped", SLUG)
    base = ["evaluate", "--campaign", SLUG, "--sku", "O365-HOME-ESD", "--purchased-at", "2013-08-01",
            "--activated-at", "2013-08-02", "--at", "2013-10-01T12:00:00Z"]
    both = cli(*base, "--purchase-country", "DK", "--activation-country", "NO")
    assert both.returncode == 0, both.stderr
    abroad = cli(*base, "--country", "DK", "--activation-country", "US")
    assert abroad.returncode == 1
    assert [f["reason"] for f in json.loads(abroad.stdout)["failures"]] == ["activation_country_not_eligible"]
    neither = cli(*base)
    assert neither.returncode == 2 and "country: is required" in neither.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--sku", "NOPE"], "sku: unknown SKU 'NOPE'"),
    (["--country", "Denmark"], "country: 'Denmark' is not an ISO 3166-1 country code"),
    (["--purchased-at", "01/08/2013"], "purchased_at: '01/08/2013' is not a valid date (use YYYY-MM-DD)"),
    (["--activated-at", "2013-07-30"], "activated_at: activation (2013-07-30) is before purchase (2013-08-01) "
                                       "in the campaign's zone (Europe/Copenhagen)"),
    (["--at", "2013-10-01T12:00:00"], "at: '2013-10-01T12:00:00' has no time zone"),
    (["--campaign", "nope"], "campaign 'nope' not found"),
])
def test_evaluate_bad_input_exits_2_with_a_clear_message(cli: Cli, args: list[str], message: str) -> None:
    cli("campaigns", "import", "--shipped", SLUG)
    base = {"--campaign": SLUG, "--sku": "O365-HOME-ESD", "--country": "DK", "--purchased-at": "2013-08-01",
            "--activated-at": "2013-08-02", "--at": "2013-10-01T12:00:00Z"}
    base[args[0]] = args[1]
    result = cli("evaluate", *[x for pair in base.items() for x in pair])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_imports_and_support_redeem_end_to_end(cli: Cli) -> None:
    # A copy of the offer whose windows are open today, so the real clock applies.
    data = tomllib.loads(shipped_campaign_text(SLUG))
    today = datetime.now(UTC).date()
    data.update(slug="open-today", timezone="UTC")
    data["eligibility_window"] = {"first_day": today - timedelta(days=30), "last_day": today + timedelta(days=1)}
    data["redemption_window"] = {"first_day": today - timedelta(days=30), "last_day": today + timedelta(days=1)}
    data["reward"]["code_expires_on"] = today + timedelta(days=365)
    data["allow_unbound_keys"] = True  # the keys below name no account (R-X5's default is review)
    assert cli("campaigns", "import", cli.write("open.toml", tomli_w.dumps(data))).returncode == 0

    day = (today - timedelta(days=2)).isoformat()
    activations = cli.write("act.csv", "product_key,sku,country,purchased_at,activated_at,account_email\n"
                            f"{product_key(1)},O365-HOME-ESD,DK,{day},{day},\n{product_key(2)},O365-HOME-ESD,DK,{day},{day},\n")
    result = cli("import-activations", activations)
    assert result.returncode == 0 and "imported 2" in result.stdout
    assert cli("import-activations", activations).returncode == 2  # already recorded: all or nothing
    codes = cli.write("codes.csv", "code\n" + "\n".join(reward_code(i) for i in range(3)) + "\n")
    assert "imported 3 code(s)" in cli("import-codes", "--campaign", "open-today", codes).stdout

    redeem = ["redeem", "--campaign", "open-today", "--account", "Ann@Example.com", "--accept-terms"]
    first = cli(*redeem, "--product-key", product_key(1).lower())
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["outcome"] == "redeemed" and body["code"] == "*****-*****-*****-*****-*0000"
    assert reward_code(0) not in first.stdout + first.stderr  # support never sees the whole code
    second = cli(*redeem, "--product-key", product_key(2))
    assert second.returncode == 1 and json.loads(second.stdout)["failed_rules"] == ["R-X6"]
    no_terms = cli("redeem", "--campaign", "open-today", "--account", "bob@example.com", "--product-key", product_key(2))
    assert no_terms.returncode == 1 and json.loads(no_terms.stdout)["failed_rules"] == ["R-X8"]
    bad = cli("redeem", "--campaign", "open-today", "--account", "bob", "--product-key", "x", "--accept-terms")
    assert bad.returncode == 2 and "account_email" in bad.stderr and "product_key" in bad.stderr
    assert "available=2 issued=1" in cli("campaigns", "list").stdout


def test_a_command_queues_its_emails_with_the_configured_message_id_domain(cli: Cli) -> None:
    # The command sets mail.message_id_domain once; the redemption it runs is given no domain.
    cli.open_offer_with_one_code()
    cli.env["PROMO_MAIL_MESSAGE_ID_DOMAIN"] = "mail.cli.test"
    redeemed = cli("redeem", "--campaign", "open-today", "--account", "ann@example.com", "--accept-terms",
                   "--product-key", product_key(1))
    assert redeemed.returncode == 0, redeemed.stderr
    conn = cli.connect()  # the store the command used: cli.sqlite3, or this run's PostgreSQL database
    try:
        (message_id,) = conn.execute("SELECT message_id FROM outbox WHERE template = 'reward_code'").fetchone()
    finally:
        conn.close()
    assert message_id.endswith("@mail.cli.test>")


def test_import_codes_reports_lines_and_exits_2(cli: Cli) -> None:
    cli("campaigns", "import", "--shipped", SLUG)
    path = cli.write("codes.csv", f"code\n{reward_code(1)}\n{reward_code(1)}\nnope\n")
    result = cli("import-codes", "--campaign", SLUG, path)
    assert result.returncode == 2
    assert "line 3: code: duplicate of line 2" in result.stderr
    assert "line 4: code: does not match" in result.stderr


def test_commands_refuse_an_unmigrated_database(bare_cli: Cli) -> None:
    run = bare_cli
    result = run("campaigns", "list")
    assert result.returncode == 2 and "run `promo migrate`" in result.stderr


def test_a_malformed_setting_stops_start_up_naming_it(bare_cli: Cli) -> None:
    run = bare_cli
    run.env["PROMO_SERVER_PORT"] = "eighty"
    result = run("serve")
    assert result.returncode == 2 and "server.port" in result.stderr and "Traceback" not in result.stderr


def test_serve_without_a_secret_names_the_setting(bare_cli: Cli) -> None:
    run = bare_cli
    run("migrate")
    result = run("serve")
    assert result.returncode == 2 and "security.secret_key" in result.stderr


def test_relay_alone_sends_the_queue_and_stops_on_sigterm(cli: Cli) -> None:
    """`promo relay`: email in a process of its own, for web servers with mail.relay = false."""
    conn = cli.connect()
    with transaction(conn):
        message_id = enqueue(conn, template="signin_link", recipient="ann@example.com", subject_ref="signin:relay-test",
                             at=datetime.now(UTC), payload={"link": "http://promo.test/signin/T", "minutes": 15})
    smtp = MailServer().start()
    relay = subprocess.Popen([PROMO, "relay"], env={**cli.env, "PROMO_MAIL_HOST": "127.0.0.1", "PROMO_MAIL_PORT": str(smtp.port)},
                             cwd=cli.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not smtp.received and time.monotonic() < deadline and relay.poll() is None:
            time.sleep(0.05)
        assert [m["Message-ID"] for m in smtp.received] == [message_id]
        relay.send_signal(signal.SIGTERM)
        _out, err = relay.communicate(timeout=30)
    finally:
        if relay.poll() is None:
            relay.kill()
        smtp.stop()
    assert relay.returncode == 0 and "Traceback" not in err, err
    row = conn.execute("SELECT status, attempts FROM outbox WHERE message_id = :m", {"m": message_id}).fetchone()
    conn.close()
    assert tuple(row) == ("sent", 1)


def test_backup_copies_sqlite_and_points_postgresql_at_pg_dump(cli: Cli) -> None:
    target = cli.dir / "copy.sqlite3"
    result = cli("backup", str(target))
    if cli.url:  # the backup API and integrity_check are SQLite's
        assert result.returncode == 2 and "database.url: promo backup copies the SQLite file" in result.stderr
        assert "pg_dump" in result.stderr and not target.exists()
    else:
        assert result.returncode == 0 and target.exists(), result.stderr
