"""Debian's chromium for the browser tests: where it is, how it is started, where screenshots
go. Importing this module skips the importing test module when chromium is missing (and fails
it in CI, where scripts/test installs chromium)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail("Debian's chromium is missing: scripts/test installs it (apt-get install chromium)", pytrace=False)
    pytest.skip("Debian's chromium is not installed (scripts/test installs it when run as root)", allow_module_level=True)

from playwright.sync_api import Page  # noqa: E402

from tests.support.served import Served  # noqa: E402


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_newest_mail(page: Page, server: Served, subject: str) -> None:
    """The relay sends after the request that queued the email: reload until it is there."""
    for _ in range(40):
        page.goto(server.url + "/dev/mail")
        link = page.get_by_role("link", name=subject)
        if link.count():
            link.first.click()
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"no email {subject!r} in /dev/mail after 10 s")
