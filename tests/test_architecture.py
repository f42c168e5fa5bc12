"""The shape issue 16 asks of promo/views/: views speak HTTP and HTML and call one service
function per action (`db.read(fn, ...)`, `db.write(fn, ...)`); they hold no connection,
write no SQL and import no database module, and their imports are at module top.

Each module under promo/views/ is parsed (ast), not imported, so a violation is found
whether or not the code path runs in a test. Below them, the shape asked of tests/ (issue 16,
item 9): helpers are shared through tests/support/, never by importing a test module."""

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


# ---- tests: helpers shared through tests/support/, never through another test module ------
# A test module that imports from another one ties the two together (moving or deleting a test
# breaks an unrelated one) and hides where a helper lives; conftest.py holds fixtures only.

TESTS = Path(__file__).resolve().parent
NOT_TO_IMPORT = re.compile(r"^tests(\.\w+)*\.(test_\w+|conftest)$")


def forbidden_test_imports(source: str) -> list[str]:
    """Imports in `source` (any module under tests/) from a test module or from a conftest.py."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # relative: from .test_x import y, from . import test_x
            modules = [f"tests.{node.module or ''}"] + [f"tests.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        found += [f"line {node.lineno}: imports {m} (move what it needs to tests/support/)"
                  for m in modules if NOT_TO_IMPORT.match(m)]
    return found


def python_files_under_tests() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "vendor" not in p.parts)


@pytest.mark.parametrize("path", python_files_under_tests(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_module_imports_another_test_module_or_a_conftest(path: Path) -> None:
    found = forbidden_test_imports(path.read_text(encoding="utf-8"))
    assert found == [], f"tests/{path.relative_to(TESTS)}:\n" + "\n".join(found)


@pytest.mark.parametrize("planted", [
    "from tests.test_cli import Cli\n",
    "from tests.system.test_concurrency import assert_invariants\n",
    "from tests.system.e2e.test_browser import shot\n",
    "def helper():\n    from tests.test_redemption import add_codes\n",
    "from tests.conftest import SLUG\n",
    "import tests.test_api\n",
    "from tests import test_nonprofit\n",
    "from .test_auditor import staff\n",
])
def test_a_planted_test_module_import_is_found(planted: str) -> None:
    assert forbidden_test_imports(planted), planted


def test_imports_from_support_are_accepted() -> None:
    source = ("from tests.support.cli import Cli\nfrom tests.support import race_worker\n"
              "from tests.system.e2e.chromium import shot\nfrom tests.support.database import SLUG, product_key\n")
    assert forbidden_test_imports(source) == []


# ---- the maps for newcomers match the code -------------------------------------------------

ROOT = TESTS.parent


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def test_the_readme_layout_names_every_module() -> None:
    layout = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Layout")
    promo = ROOT / "promo"
    modules = {p.stem for p in promo.glob("*.py") if p.stem != "__init__"}
    packages = {p.name for p in promo.iterdir() if (p / "__init__.py").exists() and p.name not in ("data", "migrations")}
    views = {p.stem for p in (promo / "views").glob("*.py") if p.stem != "__init__"}
    missing = sorted({f"{m}.py" for m in modules} | {f"{p}/" for p in packages} | views - set(re.findall(r"[\w/.]+", layout)))
    missing = [m for m in missing if m.rstrip("/").removesuffix(".py") not in re.findall(r"\w+", layout)]
    assert missing == [], f"README.md's Layout does not name {missing}"


def test_architecture_names_the_owner_of_every_table() -> None:
    owners = _section((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"), "## Who owns which table")
    sql = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "promo" / "migrations").glob("*.sql"))
    created = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", sql, re.IGNORECASE))
    dropped = set(re.findall(r"DROP TABLE (?:IF EXISTS )?(\w+)", sql, re.IGNORECASE))
    renamed = set(re.findall(r"ALTER TABLE (\w+) RENAME TO", sql, re.IGNORECASE))
    tables = created - dropped - renamed | set(re.findall(r"RENAME TO (\w+)", sql, re.IGNORECASE))
    missing = sorted(t for t in tables if f"`{t}`" not in owners)
    assert missing == [], f"ARCHITECTURE.md does not say who owns {missing}"


def test_no_test_file_or_test_is_left_pending_on_postgresql() -> None:
    """Issue 17: the whole suite on both stores, none silently skipped on one. A test about one
    store says so with sqlite_only/postgresql_only and its reason; these lists stay empty."""
    from tests.support.stores import PENDING_ON_POSTGRESQL, PENDING_TESTS_ON_POSTGRESQL

    assert PENDING_ON_POSTGRESQL == {} and PENDING_TESTS_ON_POSTGRESQL == {}
