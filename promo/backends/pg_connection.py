"""A psycopg 3 connection with the `sqlite3.Connection` surface the storage functions use.

So the domain code runs unchanged on PostgreSQL:
- `execute(sql, params)` / `executemany` take the shared SQL (`:name` or `?`, translated
  by pg_sql) and return a cursor with fetchone/fetchall/iteration/rowcount/lastrowid;
  `lastrowid` comes from a `RETURNING` appended to single-row INSERTs into a table with an
  identity column (no extra round trip).
- Rows are indexable by column name and by position, like sqlite3.Row.
- timestamptz values are read back as the exact text promo.timeutil.db_time writes, and
  jsonb as its text, so `from_db_time(row["x"])` and `json.loads(row["y"])` still hold.
- A constraint violation raises `ConstraintViolation`, a sqlite3.IntegrityError, which is
  what the domain catches today (a hook in promo.db should name a store-neutral one).
The connection is in autocommit mode: transactions are the explicit BEGIN/COMMIT and
SAVEPOINTs of promo.db.transaction and run_jobs, as with sqlite3's isolation_level=None.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.adapt import Buffer, Loader
from psycopg.pq import ExecStatus, PipelineStatus, TransactionStatus

from promo.backends.pg_sql import POSTGRESQL, inserted_table, translate
from promo.errors import NUL_MESSAGE, InputError

Params = Mapping[str, Any] | Sequence[Any]

# Session settings every connection gets: UTC text for timestamptz (what the loader reads).
CONNECT_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO"


class ConstraintViolation(sqlite3.IntegrityError):
    """A UNIQUE, CHECK or foreign key constraint refused a row on PostgreSQL. The psycopg
    error is its __cause__ (its sqlstate and constraint name are there)."""

    def __init__(self, error: psycopg.errors.IntegrityError):
        super().__init__(str(error).strip())
        self.sqlstate = error.sqlstate
        self.constraint = getattr(error.diag, "constraint_name", None)


def holds_nul(exc: psycopg.DataError) -> bool:
    """A NUL in text, or in jsonb (as \\u0000: a campaign name with one, in an outbox row's context)."""
    return "NUL (0x00)" in str(exc) or isinstance(exc, psycopg.errors.UntranslatableCharacter) and "\\u0000" in str(exc)


def nul_refused() -> InputError:
    """PostgreSQL's text cannot hold NUL, which SQLite stores: a value with one (a path, a form
    field) is bad input, a clear 4xx, never a 500."""
    return InputError.one("text", NUL_MESSAGE)


class DbTimeLoader(Loader):
    """timestamptz (text, TimeZone=UTC, DateStyle=ISO: '2026-12-03 21:13:10.5+00') as db_time's
    fixed-width text '2026-12-03T21:13:10.500000Z'."""

    def load(self, data: Buffer) -> str:
        text = bytes(data).decode("ascii")
        if not text.endswith("+00") or len(text) < 22:
            raise ValueError(f"timestamptz not in UTC ISO text (set TimeZone=UTC): {text!r}")
        fraction = text[20:-3]  # '' or the digits after '.', trailing zeros dropped
        return f"{text[:10]}T{text[11:19]}.{fraction:0<6}Z"


class JsonTextLoader(Loader):
    """jsonb as its text: callers json.loads it, as they do the TEXT column on SQLite."""

    def load(self, data: Buffer) -> str:
        return bytes(data).decode("utf-8")


class WholeNumberLoader(Loader):
    """numeric as int when it is whole: PostgreSQL's SUM() of integers is numeric, SQLite's an
    int, and callers format, compare and JSON-encode it as one. A fraction stays a Decimal."""

    def load(self, data: Buffer) -> int | Decimal:
        text = bytes(data).decode("ascii")
        return int(text) if text.lstrip("-").isdigit() else Decimal(text)


class PgRow:
    """A result row by position (row[0]) and by name (row["code"]), like sqlite3.Row."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: Mapping[str, int]):
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                return self._values[self._index[key.lower()]]  # sqlite3.Row ignores case too
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PgRow) and tuple(self._values) == tuple(other._values) and self.keys() == other.keys()

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))!r})"


# Each result's columns by name, per distinct list of names: a statement's are the same every
# time, and building them from cursor.description (a Column object per column, per result) was
# a tenth of the app's CPU in a redemption (issue 18). Bounded by the statements in the code.
_INDEXES: dict[tuple[bytes | None, ...], dict[str, int]] = {}
_INDEXES_MAX = 4096


def pg_row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], PgRow]:
    result = cursor.pgresult
    names = tuple(result.fname(i) for i in range(result.nfields)) if result is not None else ()
    index = _INDEXES.get(names)
    if index is None:
        index = {column.name: i for i, column in enumerate(cursor.description or ())}
        if len(_INDEXES) < _INDEXES_MAX:
            _INDEXES[names] = index
    return lambda values: PgRow(values, index)


_ROWS = frozenset({ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK})


def returns_rows(cursor: psycopg.Cursor[Any]) -> bool:
    """cursor.description is not None, without building it (a Column object per column)."""
    result = cursor.pgresult
    return result is not None and (result.nfields > 0 or result.status in _ROWS)


class PgCursor:
    """What sqlite3.Cursor offers the storage functions, over a psycopg cursor. In a pipeline
    (PgConnection.pipeline) the statement may not have been answered yet: reading anything of
    its result (rows, rowcount, lastrowid) first sends what is queued and waits for the answers,
    so the caller sees what sqlite3 would have given it, and a queued statement's error is
    raised there."""

    def __init__(self, cursor: psycopg.Cursor[PgRow], lastrowid: int | None = None, *,
                 settle: Callable[[], None] | None = None, returns_id: bool = False):
        self._cursor = cursor
        self._lastrowid = lastrowid
        self._settle = settle  # set in a pipeline: waits for every queued answer
        self._returns_id = returns_id  # the statement carries the RETURNING that lastrowid reads

    def _answered(self) -> psycopg.Cursor[PgRow]:
        if self._settle is not None:
            if self._cursor.pgresult is None:
                self._settle()
            self._settle = None
            if self._returns_id:
                self._returns_id = False
                returned = self._cursor.fetchall()
                self._lastrowid = int(returned[-1][0]) if returned else None
        return self._cursor

    @property
    def lastrowid(self) -> int | None:
        self._answered()
        return self._lastrowid

    @property
    def rowcount(self) -> int:
        return self._answered().rowcount

    @property
    def description(self) -> Any:
        return self._answered().description

    def fetchone(self) -> PgRow | None:
        cursor = self._answered()
        return cursor.fetchone() if returns_rows(cursor) else None

    def fetchall(self) -> list[PgRow]:
        cursor = self._answered()
        return cursor.fetchall() if returns_rows(cursor) else []

    def fetchmany(self, size: int = 1) -> list[PgRow]:
        cursor = self._answered()
        return cursor.fetchmany(size) if returns_rows(cursor) else []

    def __iter__(self) -> Iterator[PgRow]:
        cursor = self._answered()
        return iter(cursor) if returns_rows(cursor) else iter(self.fetchall())

    def close(self) -> None:
        self._cursor.close()


@contextmanager
def as_sqlite_errors() -> Iterator[None]:
    """The errors the domain catches, as sqlite3 raises them: a refused constraint as
    ConstraintViolation (an IntegrityError), a NUL in text as bad input."""
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        raise ConstraintViolation(exc) from exc
    except psycopg.DataError as exc:
        if not holds_nul(exc):
            raise
        raise nul_refused() from exc


class PgConnection:
    """A psycopg connection that the storage functions take for a sqlite3.Connection."""

    dialect = POSTGRESQL

    def __init__(self, raw: psycopg.Connection[Any], identities: Mapping[str, str]):
        self.raw = raw
        self._identities = identities  # table -> its identity column (id; audit_events.seq)
        self.mail_queued = False  # set by outbox.enqueue: the store announces it after commit (backends/notify.py)
        self._trace: Callable[[str], object] | None = None
        self._pipeline: psycopg.Pipeline | None = None  # while in pipeline(): statements are queued

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Inside: statements are queued and sent together (psycopg's pipeline mode), so those
        whose answers nobody reads before the next read, or before the block ends, cost no
        round trip of their own. Whatever reads a result waits for every answer queued before
        it. A queued statement's error is raised at the next statement asked or result read
        after its answer came back, or at the block's end (which waits for all). So a caller
        that catches a statement's error must read its result (or call settle()) inside its
        `try`, and call recover() before its next statement. Nested: the outer block's."""
        if self._pipeline is not None:
            yield
            return
        with as_sqlite_errors(), self.raw.pipeline() as pipeline:
            self._pipeline = pipeline
            try:
                yield
            except BaseException:
                self.recover()  # so that leaving the pipeline finds nothing more to complain about
                raise
            finally:
                self._pipeline = None

    def recover(self) -> None:
        """After an error was raised in a pipeline: collect every answer still queued and let
        the server take statements again, raising nothing (those answers are the first error's
        aftermath: statements the server skipped). Outside a pipeline: nothing."""
        with contextlib.suppress(psycopg.Error):
            self.settle()

    def settle(self) -> None:
        """Send what the pipeline holds and wait for every answer; a queued statement's error
        is raised here. After an error, this is what lets the pipeline take statements again
        (the server skips them until a sync). Outside a pipeline, or with nothing queued and no
        error: nothing (no round trip)."""
        pipeline = self._pipeline
        if pipeline is not None and (pipeline.result_queue or pipeline.status == PipelineStatus.ABORTED):
            with as_sqlite_errors():
                pipeline.sync()

    def set_trace_callback(self, trace: Callable[[str], object] | None) -> None:
        """As sqlite3's: trace(sql) for each statement this adapter sends (tests count them)."""
        self._trace = trace

    def execute(self, sql: str, params: Params = ()) -> PgCursor:
        if self._trace is not None:
            self._trace(sql)
        table = inserted_table(sql)
        identity = self._identities.get(table) if table else None
        statement = translate(sql) + (f" RETURNING {identity}" if identity else "")
        cursor = self.raw.cursor(row_factory=pg_row_factory)
        with as_sqlite_errors():
            cursor.execute(statement, params)  # () too: psycopg then reads %% as %
        if self._pipeline is not None:  # queued: answered when something reads it, or at settle()
            return PgCursor(cursor, settle=self.settle, returns_id=bool(identity))
        if identity:
            returned = cursor.fetchall()  # INSERT ... VALUES (...), (...): the last, as sqlite3 says
            return PgCursor(cursor, int(returned[-1][0]) if returned else None)
        return PgCursor(cursor)

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> PgCursor:
        if self._trace is not None:
            self._trace(sql)
        cursor = self.raw.cursor(row_factory=pg_row_factory)
        with as_sqlite_errors():
            cursor.executemany(translate(sql), seq_of_params)
        return PgCursor(cursor, settle=self.settle if self._pipeline is not None else None)

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """As sqlite3's `with conn:`: commit an open transaction, or roll it back on an error."""
        if self.in_transaction:
            self.raw.execute("ROLLBACK" if kind is not None else "COMMIT")

    def reread_identities(self) -> None:
        """After a migration: the tables it made have identity columns lastrowid must know."""
        self._identities = read_identities(self.raw)

    @property
    def pipelining(self) -> bool:
        """Inside pipeline(): what is asked is sent at once (backends.ask)."""
        return self._pipeline is not None

    @property
    def backend_pid(self) -> int:
        return self.raw.info.backend_pid

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def configure(raw: psycopg.Connection[Any]) -> None:
    """Per connection, once: the loaders that make PostgreSQL's values read as SQLite's text."""
    raw.adapters.register_loader("timestamptz", DbTimeLoader)
    raw.adapters.register_loader("jsonb", JsonTextLoader)
    raw.adapters.register_loader("json", JsonTextLoader)
    raw.adapters.register_loader("numeric", WholeNumberLoader)


def read_identities(raw: psycopg.Connection[Any]) -> dict[str, str]:
    """Each table's identity column, read from the schema (so lastrowid needs no list to keep)."""
    rows = raw.execute("SELECT table_name, column_name FROM information_schema.columns"
                       " WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall()
    return {table: column for table, column in rows}


def connect(url: str, **kwargs: Any) -> PgConnection:
    """A configured connection (CLI tools, tests). The service uses PostgresDatabase's pool."""
    raw = psycopg.connect(url, autocommit=True, options=CONNECT_OPTIONS, **kwargs)
    configure(raw)
    return PgConnection(raw, read_identities(raw))
