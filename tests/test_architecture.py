"""The shape issue 16 asks of promo/views/: views speak HTTP and HTML and call one service
function per action (`db.read(fn, ...)`, `db.write(fn, ...)`); they hold no connection,
write no SQL and import no database module, and their imports are at module top.

Each module under promo/views/ is parsed (ast), not imported, so a violation is found
whether or not the code path runs in a test."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

VIEWS = Path(__file__).resolve().parent.parent / "promo" / "views"
SQL_START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
DATABASE_MODULES = ("sqlite3", "aiosqlite", "promo.db")

def violations(source: str) -> list[str]:
    """What in `source` (a view module) breaks the shape above, one line each."""
    found: list[str] = []
    lines = source.splitlines()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_START.match(node.value):
            found.append(f"line {node.lineno}: an SQL string {node.value.strip()[:40]!r}")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if _is_database(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_database(node.module):
                found.append(f"line {node.lineno}: imports from {node.module}")
            elif node.module == "promo":
                found += [f"line {node.lineno}: imports promo.{a.name}" for a in node.names if a.name == "db"]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            params = node.args.posonlyargs + node.args.args
            if params and params[0].arg == "conn":
                name = getattr(node, "name", "lambda")
                found.append(f"line {node.lineno}: {name}(conn, ...) holds a connection; move it to a service module")
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)) and not _cycle_explained(lines, inner.lineno):
                    found.append(f"line {inner.lineno}: an import inside a function (move it to the top, or say "
                                 f"which cycle forces it in a comment naming the cycle)")
    return sorted(set(found), key=lambda v: int(v.split(":")[0].split()[1]))


def _is_database(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in DATABASE_MODULES)


def _cycle_explained(lines: list[str], lineno: int) -> bool:
    """A function-level import is allowed when its line or the one above says which cycle."""
    return any("cycle" in lines[i].lower() for i in (lineno - 2, lineno - 1) if 0 <= i < len(lines))


def view_modules() -> list[Path]:
    return sorted(VIEWS.glob("*.py"))


@pytest.mark.parametrize("path", view_modules(), ids=lambda p: p.name)
def test_views_hold_no_connection_and_write_no_sql(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"))
    assert found == [], f"promo/views/{path.name}:\n" + "\n".join(found)


@pytest.mark.parametrize(("planted", "expected"), [
    ('ROWS = "SELECT id FROM campaigns"\n', "an SQL string 'SELECT id FROM campaigns'"),
    ('def f(slug):\n    return f"select * from campaigns where slug = {slug}"\n', "an SQL string"),
    ('Q = """\n    with recent as (select 1) select * from recent"""\n', "an SQL string"),
    ('X = ("update campaigns set paused_at = :t"\n     " where id = :id")\n', "an SQL string"),
    ('Q = "DELETE FROM staff"\n', "an SQL string"),
    ('Q = "INSERT INTO outbox VALUES (1)"\n', "an SQL string"),
    ("from promo.db import transaction\n", "imports from promo.db"),
    ("from promo.db import Database\n", "imports from promo.db"),
    ("import sqlite3\n", "imports sqlite3"),
    ("from promo import db\n", "imports promo.db"),
    ("async def view(request):\n    def load(conn):\n        return 1\n    return load\n", "load(conn, ...) holds a connection"),
    ("def get_offer(conn, slug):\n    return slug\n", "get_offer(conn, ...) holds a connection"),
    ("async def view(request):\n    return await db.read(lambda conn: 1)\n", "lambda(conn, ...) holds a connection"),
    ("async def view(request):\n    from promo.catalog import load_catalog\n    return load_catalog\n",
     "an import inside a function"),
])
def test_a_planted_violation_is_found(planted: str, expected: str) -> None:
    found = violations(planted)
    assert any(expected in v for v in found), found


def test_what_views_do_instead_is_accepted() -> None:
    source = (
        "from promo.campaign_service import save_and_rearm\n"
        "async def view(request):\n"
        "    # cycle: promo.app imports this module\n"
        "    from promo.app import x\n"
        "    return await request.app.state.db.write(save_and_rearm, 1, actor='a')\n"
        'HELP = "Choose the country where you bought the product"\n'
    )
    assert violations(source) == []
