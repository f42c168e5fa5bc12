"""The offer's own terms and conditions, the ones a customer agrees to by taking part (R-X22;
they include the privacy policy R-X17, transfer R-X18, taxes R-X19, online only R-X20 and
the customer's representations R-X21). Distinct from the reward's terms of use (R-X8).

A campaign carries them as an ordered list of sections (`[[terms]]` in the campaign file),
each with a title and a text in every language the campaign offers, and optionally a short
summary that the reward email repeats. Their version is the sha256 of the whole (every
language), recorded with each redemption: the text behind a version is kept in
terms_versions (promo/terms_store.py), so an auditor can prove what was agreed to."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from babel import Locale

BASE_LANGUAGE = "en"  # the campaign's `name` is English: its terms always exist in English
SECTION_KEYS = ("id", "rules", "title", "text", "summary")
_SECTION_ID = re.compile(r"[a-z0-9]+([-_][a-z0-9]+)*")
_RULE_ID = re.compile(r"R-[A-Z]+\d+")


@dataclass(frozen=True)
class TermsSection:
    id: str
    title: Mapping[str, str]  # language -> heading
    text: Mapping[str, str]  # language -> text: paragraphs split by blank lines, "- " items
    summary: Mapping[str, str] = field(default_factory=dict)  # language -> one line for the reward email
    rules: tuple[str, ...] = ()  # the rule ids (../shared/RULES.md) this section states

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.rules:
            out["rules"] = list(self.rules)
        out |= {"title": dict(self.title), "text": dict(self.text)}
        if self.summary:
            out["summary"] = dict(self.summary)
        return out


@dataclass(frozen=True)
class Terms:
    sections: tuple[TermsSection, ...]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.sections[0].text) if self.sections else (BASE_LANGUAGE,)

    def language_for(self, lang: str) -> str:
        """The reader's language when the terms exist in it, else English."""
        return lang if lang in self.languages else BASE_LANGUAGE

    def as_list(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.sections]

    @cached_property  # frozen: computed once per parsed campaign
    def canonical(self) -> str:
        """The text that is hashed and kept: key order and spacing fixed, section order kept."""
        return canonical_terms(self.as_list())

    @cached_property
    def version(self) -> str:
        return terms_version(self.canonical)

    def summaries(self, lang: str) -> list[str]:
        lang = self.language_for(lang)
        return [s.summary[lang] for s in self.sections if lang in s.summary]


def canonical_terms(sections: list[dict[str, Any]]) -> str:
    return json.dumps(sections, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def terms_version(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---- the campaign file ------------------------------------------------------------------

Fail = Callable[[str, str], None]


def parse_terms(value: Any, required_languages: Iterable[str], known_languages: tuple[str, ...], fail: Fail) -> Terms | None:
    """`[[terms]]` from a campaign file, or None when it has none. Every problem is reported
    through `fail(field, message)`, with the section and language in the field's name."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(entry, Mapping) for entry in value):
        fail("terms", "must be a list of sections ([[terms]]), each with id, title and text")
        return None
    if not value:
        return None
    reported: set[str] = set()

    def note(field: str, message: str) -> None:
        reported.add(field)  # one message per field: a text already refused is not "missing" too
        fail(field, message)

    sections, seen = [], set()
    for i, entry in enumerate(value):
        where = f"terms[{i}]"
        section_id = entry.get("id")
        if not isinstance(section_id, str) or not _SECTION_ID.fullmatch(section_id):
            fail(f"{where}.id", "is required: lower-case letters and digits joined by - or _, e.g. transfer")
            section_id = f"#{i + 1}"
        elif section_id in seen:
            fail(f"{where}.id", f"{section_id!r} is already the id of another section")
        seen.add(section_id)
        for key in sorted(set(entry) - set(SECTION_KEYS)):
            fail(f"{where}.{key}", f"unknown setting for a terms section; use {', '.join(SECTION_KEYS)}")
        rules = entry.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, str) and _RULE_ID.fullmatch(r) for r in rules):
            fail(f"{where}.rules", "must be a list of rule ids such as \"R-X18\"")
            rules = []
        texts = {key: _texts(entry.get(key), f"{where}.{key}", known_languages, note, required=key != "summary")
                 for key in ("title", "text", "summary")}
        sections.append(TermsSection(section_id, texts["title"], texts["text"], texts["summary"], tuple(rules)))

    # Every language the campaign offers, or that any section speaks, in every section.
    known = [lang for lang in known_languages if lang in set(required_languages) | {BASE_LANGUAGE}]
    offered = known + sorted({lang for s in sections for key in ("title", "text", "summary")
                              for lang in getattr(s, key) if lang not in known})
    for i, section in enumerate(sections):
        for key in ("title", "text", "summary"):
            present = getattr(section, key)
            if key == "summary" and not present:
                continue  # a summary is optional, but then in every language
            for lang in offered:
                if lang not in present and not {f"terms[{i}].{key}", f"terms[{i}].{key}.{lang}"} & reported:
                    fail(f"terms[{i}].{key}.{lang}",
                         f"the section {section.id!r} has no {key} in {language_name(lang)} ({lang}): every section needs "
                         f"its {key} in every language the campaign offers ({', '.join(offered)})")
    ordered = tuple(TermsSection(s.id, _ordered(s.title, offered), _ordered(s.text, offered), _ordered(s.summary, offered),
                                 s.rules) for s in sections)
    return Terms(ordered)


def _texts(value: Any, where: str, known_languages: tuple[str, ...], fail: Fail, *, required: bool) -> dict[str, str]:
    if value is None:
        if required:
            fail(where, "is required: a table of language = \"text\"")
        return {}
    if not isinstance(value, Mapping):
        fail(where, "must be a table of language = \"text\"")
        return {}
    out = {}
    for lang, text in value.items():
        if lang not in known_languages:
            fail(f"{where}.{lang}", f"unknown language {lang!r}; use one of {', '.join(known_languages)}")
        elif not isinstance(text, str):
            fail(f"{where}.{lang}", "must be a text")
        elif text.strip():  # an empty text is a missing one, reported as such below
            out[lang] = text.strip()
    return out


def _ordered(texts: Mapping[str, str], languages: list[str]) -> dict[str, str]:
    """Languages in one order (the campaign's own first), so a file exports the same way."""
    return {lang: texts[lang] for lang in languages if lang in texts}


def language_name(lang: str) -> str:
    name: str = Locale("en").languages.get(lang.replace("-", "_"), lang)  # Babel's mapping is untyped
    return name


# ---- display -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    text: str
    items: tuple[str, ...] = ()  # one level of sub-items ("  - " in the text)


@dataclass(frozen=True)
class Block:
    paragraph: str = ""
    items: tuple[Item, ...] = ()  # a list, when there is no paragraph


def blocks(text: str) -> list[Block]:
    """A section's text as paragraphs and lists: blank lines part paragraphs, lines that
    start with "- " are list items, and "  - " a sub-item of the item above."""
    out: list[Block] = []
    items: list[Item] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        words: list[str] = []
        for line in chunk.splitlines():
            if line.startswith("  - ") and items:
                items[-1] = Item(items[-1].text, (*items[-1].items, line[4:].strip()))
            elif line.lstrip().startswith("- "):
                if words:
                    out.append(Block(paragraph=" ".join(words)))
                    words = []
                items.append(Item(line.lstrip()[2:].strip()))
            elif line.strip():
                if items:
                    out.append(Block(items=tuple(items)))
                    items = []
                words.append(line.strip())
        if words:
            out.append(Block(paragraph=" ".join(words)))
        if items:
            out.append(Block(items=tuple(items)))
            items = []
    return out


def terms_from_list(sections: Sequence[Mapping[str, Any]]) -> Terms:
    """Terms as stored (validated when their campaign was saved), e.g. an earlier version."""
    return Terms(tuple(TermsSection(s["id"], s["title"], s["text"], s.get("summary", {}), tuple(s.get("rules", ())))
                       for s in sections))
