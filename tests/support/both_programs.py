"""A database using both programs: what backups and copies of a real deployment hold."""

from __future__ import annotations

import sqlite3

from promo.campaign_store import get_campaign
from tests.support.database import SLUG
from tests.support.nonprofit import T0, approved_org, ask, install_program, new_code
from tests.support.redemption import ANN, add_activations, add_codes, redeem


def both_programs(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An offer redemption and a granted nonprofit donation in one database."""
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", ANN)])  # bound to the account that redeems it (R-X5)
    add_codes(conn, get_campaign(conn, SLUG), 3)
    assert redeem(conn, 1).redeemed
    install_program(conn, keys_per_product=2, now=T0)
    donation = ask(conn, new_code(conn, approved_org(conn)), T0, DON_OFFICE_PROPLUS=1, DON_WINSRV_STD=1)
    assert donation.fulfilled
    return conn
