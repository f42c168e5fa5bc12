"""The registry the relay reads email data from (promo/email_contexts.py): a domain's
builder for its template, the outbox row's payload otherwise, a permanent failure when
there is neither; and every builder registered once the relay's start-up import ran."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from promo import email_contexts
from promo.email_contexts import PermanentFailure, context_for, register
from promo.outbox import OutboxMessage


def message(template: str, subject_ref: str = "thing:7", payload: dict[str, Any] | None = None) -> OutboxMessage:
    return OutboxMessage(1, "<m@promo.invalid>", template, "ann@example.com", subject_ref, 0, "en", payload)


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_contexts, "_BUILDERS", {})


def things(conn: sqlite3.Connection, msg: OutboxMessage) -> dict[str, Any] | None:
    kind, _, ref = msg.subject_ref.partition(":")
    return {"thing": int(ref), "read": conn.execute("SELECT 40 + 2").fetchone()[0]} if kind == "thing" else None


def test_a_registered_builder_reads_the_data_and_may_leave_it_to_the_payload(conn: sqlite3.Connection) -> None:
    register("thing_mail", things)
    assert context_for(conn, message("thing_mail")) == {"thing": 7, "read": 42}
    assert context_for(conn, message("thing_mail", "other:1", {"from": "payload"})) == {"from": "payload"}
    assert context_for(conn, message("plain_mail", payload={"a": 1})) == {"a": 1}


def test_no_builder_and_no_payload_is_a_permanent_failure(conn: sqlite3.Connection) -> None:
    register("thing_mail", things)
    for msg in (message("plain_mail"), message("thing_mail", "other:1")):
        with pytest.raises(PermanentFailure, match=f"no data for template '{msg.template}'"):
            context_for(conn, msg)


def test_a_template_has_one_builder() -> None:
    register("thing_mail", things)
    register("thing_mail", things)  # importing a module twice is harmless
    with pytest.raises(ValueError, match="already has a context builder"):
        register("thing_mail", lambda conn, msg: {})


def test_the_relay_s_start_up_import_registers_every_sending_domain() -> None:
    """What `promo relay` and the app import: the reward and the licence keys are read when sent."""
    code = ("import sys; import promo.email_domains; from promo.email_contexts import registered; "
            "print(sorted(registered())); print('promo.mail' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.split("\n")
    assert out[:2] == ["['donation_keys', 'reward_code']", "False"]
