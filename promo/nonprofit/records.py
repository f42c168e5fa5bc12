"""What the console looks for in the nonprofit program's records that grow without end
(issue 19, item 8): a text and, for organisations, a standing. Each list is read where
its table is owned (organisations.organisations_page, donations.requests_page). Owns no
table."""

from __future__ import annotations

from dataclasses import dataclass

from promo.errors import FieldError, InputError

MAX_SEARCH = 100


def like_pattern(text: str) -> str:
    """`text` anywhere, as a LIKE pattern with its wildcards taken literally (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class RecordQuery:
    q: str = ""
    status: str = ""

    @classmethod
    def from_query(cls, query: dict[str, str], statuses: tuple[str, ...] = ()) -> RecordQuery:
        errors = []
        q, status = (query.get("q") or "").strip(), (query.get("status") or "").strip()
        if len(q) > MAX_SEARCH or not q.isprintable():
            errors.append(FieldError("q", f"search for printable text of at most {MAX_SEARCH} characters"))
        if status and status not in statuses:
            errors.append(FieldError("status", f"must be one of {', '.join(statuses)}"))
        if errors:
            raise InputError(errors)
        return cls(q, status)
