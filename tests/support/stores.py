"""Every test that uses `settings` runs on each store (issue 17): `--store sqlite|postgresql|both`
(default both; PROMO_TEST_STORE sets the default too).

On PostgreSQL each test has a database of its own: cloned from a template (migrated, with the
shipped catalog and campaign: what `conn` holds) when the test uses `conn`, else empty (a test
that migrates itself). Databases are named promo_test_*, and dropped after the test; the
template is made once per session. A test about SQLite itself carries
`@pytest.mark.sqlite_only("why")`: on PostgreSQL it is reported as skipped with that reason
(`-ra` prints it), never left out silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from promo.backends import pg_connection
from tests.support.pg import create_database, database_url, drop_database
from tests.support.prepared import prepare

STORES = ("sqlite", "postgresql")

# Test files that do not pass on PostgreSQL yet, and why (each test is reported as skipped
# there with this reason). Empty since issue 17: keep it so.
PENDING_ON_POSTGRESQL: dict[str, str] = {}

# Single tests that do not pass on PostgreSQL yet ("file.py::test_name": why). Empty: keep it so.
PENDING_TESTS_ON_POSTGRESQL: dict[str, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store", choices=("sqlite", "postgresql", "both"),
                     default=os.environ.get("PROMO_TEST_STORE", "both"),
                     help="the store(s) tests that use a database run on (default: both)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): a test about SQLite itself; reported as skipped on "
                                       "PostgreSQL with its reason")
    config.addinivalue_line("markers", "postgresql_only(reason): a test about PostgreSQL itself; reported as skipped "
                                       "on SQLite with its reason")


def sqlite_only_reason(metafunc: pytest.Metafunc) -> str | None:
    marker = metafunc.definition.get_closest_marker("sqlite_only")
    if marker is not None:
        return str(marker.args[0] if marker.args else marker.kwargs.get("reason", "about SQLite itself"))
    name = metafunc.definition.path.name
    pending = PENDING_ON_POSTGRESQL.get(name) or PENDING_TESTS_ON_POSTGRESQL.get(f"{name}::{metafunc.function.__name__}")
    return f"not yet on PostgreSQL (issue 17): {pending}" if pending else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("store")
    params = []
    only_postgresql = metafunc.definition.get_closest_marker("postgresql_only")
    for store in STORES if chosen == "both" else (chosen,):
        reason = sqlite_only_reason(metafunc) if store == "postgresql" else None
        marks = [pytest.mark.skip(reason=f"SQLite only: {reason}")] if reason else []
        if store == "sqlite" and only_postgresql is not None:
            marks = [pytest.mark.skip(reason=f"PostgreSQL only: {only_postgresql.args[0]}")]
        params.append(pytest.param(store, marks=marks, id=store))
    metafunc.parametrize("store", params, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """The store this run of the test uses: "sqlite" or "postgresql"."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Callable[[], str]]:
    """make() -> the name of the template database, prepared on first use in the session."""
    made: list[str] = []

    def make() -> str:
        if not made:
            name = create_database(kind="template_")
            made.append(name)
            conn = pg_connection.connect(database_url(name))
            try:
                prepare(conn)
            finally:
                conn.close()  # a template cannot be cloned while anyone is connected to it
        return made[0]

    yield make
    for name in made:
        drop_database(name)


@pytest.fixture
def store_url(store: str, request: pytest.FixtureRequest, pg_template: Callable[[], str]) -> Iterator[str | None]:
    """None on SQLite; on PostgreSQL the URL of this test's own database (see the module)."""
    if store != "postgresql":
        yield None
        return
    name = create_database(pg_template() if "conn" in request.fixturenames else None)
    try:
        yield database_url(name)
    finally:
        drop_database(name)
