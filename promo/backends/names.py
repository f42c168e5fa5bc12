"""Table and column names spliced into SQL the copy and the imports build (names read from
the schema itself, or the package's own statements), quoted as both stores expect."""

from __future__ import annotations


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_list(columns: list[str]) -> str:
    return ", ".join(quoted(c) for c in columns)
