"""What a person reads on a page: its visible text and the attributes read out to them,
kept apart from what sits folded in <details> (a reference for support)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
READ_ATTRIBUTES = ("aria-label", "title", "alt", "placeholder")
RULE_ID = re.compile(r"\b(R-[A-Z]\d+|STOCK|CAMPAIGN)\b")


@dataclass
class PageText:
    lang: str = ""
    main: list[str] = field(default_factory=list)  # visible, outside <details>
    details: list[str] = field(default_factory=list)  # folded away in <details>
    other_language: list[str] = field(default_factory=list)  # marked lang="…" for another language (e.g. language names)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.main).split())

    @property
    def folded(self) -> str:
        return " ".join(" ".join(self.details).split())


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = PageText()
        self.stack: list[tuple[str, bool, bool, bool]] = []  # (tag, hidden, in details, other language)

    def _state(self) -> tuple[bool, bool, bool]:
        return self.stack[-1][1:] if self.stack else (False, False, False)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        hidden, folded, foreign = self._state()
        if tag == "html":
            self.page.lang = values.get("lang") or ""
        hidden = hidden or tag in ("script", "style", "head") and tag != "title"
        folded = folded or tag == "details"
        lang = values.get("lang")
        foreign = foreign or bool(lang and tag != "html" and lang != self.page.lang)
        if not hidden:
            for name in READ_ATTRIBUTES:
                if values.get(name):
                    self._add(str(values[name]), folded, foreign)
        if tag not in VOID:
            self.stack.append((tag, hidden, folded, foreign))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        hidden, folded, foreign = self._state()
        in_title = bool(self.stack) and self.stack[-1][0] == "title"
        if data.strip() and (not hidden or in_title):
            self._add(data, folded, foreign)

    def _add(self, text: str, folded: bool, foreign: bool) -> None:
        (self.page.other_language if foreign else self.page.details if folded else self.page.main).append(text)


def read_page(html: str) -> PageText:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page
