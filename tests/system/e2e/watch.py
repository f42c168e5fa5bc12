"""A watch on what the browser itself reports while a test runs: Content-Security-Policy
violations, console errors and uncaught script errors (tests/system/e2e/conftest.py fails every
browser test on any of them)."""

from __future__ import annotations

import re
from typing import Any

# Reports each violation to the test through a binding (it outlives navigations), besides
# the console line chromium writes: the event is the standard's, so a console wording change
# cannot hide a violation.
_CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (e) => {
  window.__promoCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} in ${e.documentURI}`
                             + (e.sample ? ` (${e.sample})` : ''));
}, true);
"""


class BrowserWatch:
    """What the browser reported as wrong while one test ran."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        self.contexts: list[Any] = []

    def attach(self, context: Any) -> Any:
        self.contexts.append(context)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.problems.append(f"uncaught script error: {error.error}"))
        context.expose_binding("__promoCspViolation",
                               lambda _source, text: self.problems.append(f"CSP violation: {text}"))
        context.add_init_script(_CSP_LISTENER)
        return context

    def _console(self, message: Any) -> None:
        if message.type == "error":
            where = (message.location or {}).get("url", "")
            self.problems.append(f"console error ({where}): {message.text}")

    def allow(self, pattern: str) -> None:
        """A console error the test provokes on purpose (matched with re.search)."""
        self.allowed.append(re.compile(pattern))

    def allow_status(self, path: str, status: int) -> None:
        """Chromium logs every page answered with an error status as a console error: a test
        that is shown, say, a form with its errors (422) on purpose says which one."""
        self.allow(rf"^console error \(https?://[^/]+{re.escape(path)}([?#][^)]*)?\): Failed to load resource: "
                   rf"the server responded with a status of {status} ")

    def unexpected(self) -> list[str]:
        self.flush()
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]

    def flush(self) -> None:
        """One round trip per open page, so reports still in flight are delivered."""
        for context in self.contexts:
            for page in list(getattr(context, "pages", [])):
                try:
                    page.evaluate("0")
                except Exception:  # noqa: BLE001 - a closed page or context has nothing more to say
                    pass

    def close(self) -> None:
        for context in self.contexts:
            try:
                context.close()
            except Exception:  # noqa: BLE001 - already closed by the test
                pass


class WatchedBrowser:
    """The shared Browser, but every context (and page) it makes is watched for the test."""

    def __init__(self, browser: Any, watch: BrowserWatch) -> None:
        self._browser, self.watch = browser, watch

    def new_context(self, **options: Any) -> Any:
        return self.watch.attach(self._browser.new_context(**options))

    def new_page(self, **options: Any) -> Any:
        return self.new_context(**options).new_page()

    def allow_console_error(self, pattern: str) -> None:
        self.watch.allow(pattern)

    def allow_status(self, path: str, status: int) -> None:
        self.watch.allow_status(path, status)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)
