"""Domain errors. They carry what the edge (HTTP, CLI) needs to render them:
the field or line at fault, the rule id where one applies, and a status."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class PromoError(Exception):
    status = 500


@dataclass
class FieldError:
    """One problem with one piece of input: which field (and CSV line), what is wrong."""

    field: str
    message: str
    line: int | None = None
    rule: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        rule = f" ({self.rule})" if self.rule else ""
        return f"{where}{self.field}: {self.message}{rule}"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"field": self.field, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        if self.rule:
            out["rule"] = self.rule
        return out


class InputError(PromoError):
    """Bad input: never a crash, always a list of specific field errors."""

    status = 400

    def __init__(self, errors: list[FieldError] | FieldError, *, total: int | None = None):
        self.errors = errors if isinstance(errors, list) else [errors]
        # total: how many errors there were when the list was cut short for reporting.
        self.total = total if total is not None else len(self.errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    @classmethod
    def one(cls, field: str, message: str, rule: str | None = None) -> InputError:
        return cls(FieldError(field, message, rule=rule))


# PostgreSQL's text cannot hold NUL, which SQLite stores: refused at the edge on both stores, so
# a value is never kept by one store and refused by the other (nor by `promo db copy` later).
NUL_MESSAGE = "holds a NUL character (\\0), which no field accepts"


def refuse_nul(fields: Iterable[tuple[str, object]]) -> None:
    """InputError naming every field whose name or text value holds a NUL."""
    bad = dict.fromkeys(name for name, value in fields if "\x00" in name or isinstance(value, str) and "\x00" in value)
    if bad:
        raise InputError([FieldError(name.replace("\x00", "\\0"), NUL_MESSAGE) for name in bad])


class NotFound(PromoError):
    status = 404

    def __init__(self, what: str, key: str):
        self.what, self.key = what, key
        super().__init__(f"{what} {key!r} not found")


class ConfigError(PromoError):
    """A setting is missing or malformed; start-up stops with this message."""
