"""One headless chromium per test module, shared by the browser tests, and a watch on what
the browser itself reports: every browser test FAILS on a Content-Security-Policy violation,
a console error or an uncaught script error in any page it opened.

The CSP is strict (`style-src 'self'`, no inline styles or scripts): a page that breaks it
still "works" in a test that only reads text, while the browser silently drops the blocked
style (issue 19: every bar of the only chart was drawn full width). So the browser's own
reports are part of every browser test's verdict, not something a test must remember."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.e2e.watch import BrowserWatch, WatchedBrowser

WATCH = pytest.StashKey[BrowserWatch]()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.system.e2e.chromium import CHROMIUM, FLAGS  # skips (or fails in CI) when chromium is missing

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def browser(chromium: Any, request: pytest.FixtureRequest) -> Iterator[WatchedBrowser]:
    watch = BrowserWatch()
    request.node.stash[WATCH] = watch
    yield WatchedBrowser(chromium, watch)
    watch.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield  # a test that already failed keeps its own failure
    watch = item.stash.get(WATCH, None)
    if watch is not None:
        problems = watch.unexpected()
        if problems:
            raise AssertionError("the browser reported problems on the pages this test opened:\n  "
                                 + "\n  ".join(dict.fromkeys(problems)))
    return result
