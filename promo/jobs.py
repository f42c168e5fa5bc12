"""Uploads (code pools, activation records) imported in the background.

An upload is first copied to a temporary file, so the request ends at once whatever the
size; the import then runs on the writer thread, all or nothing, as `promo import-codes`
does. Progress (bytes read) is kept in memory by the instance running the job; the
outcome, with errors by line, is stored in `import_jobs` for everyone to see."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from promo.activations import import_activations
from promo.campaign_store import get_campaign
from promo.catalog import load_catalog
from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.logs import get_logger
from promo.stock import import_and_rearm
from promo.timeutil import db_time, utcnow

if TYPE_CHECKING:  # the Protocol both stores satisfy; imported for annotations only
    from promo.backends.store import Store

log = get_logger("promo.jobs")
IMPORT_KINDS = ("codes", "activations")
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportJob:
    id: int
    kind: str
    campaign_slug: str | None
    source: str
    size_bytes: int
    status: str  # running, done, failed
    imported: int | None
    errors: list[dict[str, Any]]
    error_total: int
    actor: str
    started_at: str
    finished_at: str | None

    def as_dict(self, progress: float | None = None) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "campaign": self.campaign_slug, "source": self.source,
                "size_bytes": self.size_bytes, "status": self.status, "imported": self.imported,
                "errors": self.errors, "error_total": self.error_total, "started_at": self.started_at,
                "finished_at": self.finished_at, "progress": progress}


def spool(upload: IO[bytes]) -> tuple[str, int]:
    """Copy an upload to a private temporary file (blocking: run it in a thread)."""
    fd, path = tempfile.mkstemp(prefix="promo-upload-", suffix=".csv")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(upload, out, COPY_CHUNK)
    return path, os.path.getsize(path)


class CountingReader(io.RawIOBase):
    """A file that counts the bytes read from it (progress, read from another thread)."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class ImportJobs:
    def __init__(self, db: Store):
        self.db = db
        self._reading: dict[int, CountingReader] = {}  # job id -> the file being imported
        self._tasks: dict[int, asyncio.Task[None]] = {}

    async def start(self, *, kind: str, path: str, size: int, source: str, actor: str,
                    campaign_slug: str | None = None) -> int:
        """Record the job and start it; the temporary file at `path` is removed when done."""
        if kind not in IMPORT_KINDS:
            raise ValueError(kind)
        job_id = await self.db.write(_create, kind=kind, campaign_slug=campaign_slug, source=source, size=size,
                                     actor=actor, now=utcnow())
        task = asyncio.create_task(self._run(job_id, kind, path, source, actor, campaign_slug), name=f"import-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))
        return job_id

    async def wait(self, job_id: int) -> ImportJob:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return await self.db.read(get_job, job_id)

    def progress(self, job: ImportJob) -> float | None:
        """Share of the file read so far (0..1), or None when this instance is not running it."""
        if job.status != "running":
            return 1.0
        counter = self._reading.get(job.id)
        if counter is None:
            return 0.0 if job.id in self._tasks else None
        return min(1.0, counter.count / max(job.size_bytes, 1))

    def running_here(self, job_id: int) -> bool:
        return job_id in self._tasks

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, job_id: int, kind: str, path: str, source: str, actor: str, slug: str | None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            now = utcnow()
            try:
                with open(path, "rb") as raw:
                    counter = self._reading[job_id] = CountingReader(raw)
                    imported = _import(conn, kind, io.BufferedReader(counter, COPY_CHUNK), source, actor, slug, now)
            except InputError as exc:
                _finish(conn, job_id, "failed", None, [e.as_dict() for e in exc.errors], exc.total or len(exc.errors))
                return
            except Exception as exc:  # never leave a job "running" for ever; the import rolled back
                log.error("import.failed", job=job_id, error=type(exc).__name__)
                _finish(conn, job_id, "failed", None, [{"field": "file", "message": "could not be imported (internal error)"}], 1)
                return
            finally:
                self._reading.pop(job_id, None)
            _finish(conn, job_id, "done", imported, [], 0)

        try:
            await self.db.run_writer(work)
        finally:
            await asyncio.to_thread(_remove, path)


def _import(conn: sqlite3.Connection, kind: str, stream: IO[bytes], source: str, actor: str, slug: str | None,
            now: datetime) -> int:
    if kind == "activations":
        return import_activations(conn, source=stream, catalog=load_catalog(conn), now=now, actor=actor)
    assert slug is not None
    stored = get_campaign(conn, slug)
    return import_and_rearm(conn, stored, source=stream, source_name=source, now=now, actor=actor).imported


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _create(conn: sqlite3.Connection, *, kind: str, campaign_slug: str | None, source: str, size: int, actor: str,
            now: datetime) -> int:
    campaign_id = get_campaign(conn, campaign_slug).id if campaign_slug else None
    job_id = conn.execute(
        "INSERT INTO import_jobs (kind, campaign_id, source, size_bytes, status, actor, started_at)"
        " VALUES (:kind, :c, :source, :size, 'running', :actor, :now)",
        {"kind": kind, "c": campaign_id, "source": source[:200], "size": size, "actor": actor, "now": db_time(now)},
    ).lastrowid
    assert job_id is not None
    return job_id


def _finish(conn: sqlite3.Connection, job_id: int, status: str, imported: int | None, errors: list[dict[str, Any]],
            total: int) -> None:
    with transaction(conn):
        conn.execute(
            "UPDATE import_jobs SET status = :s, imported = :n, errors = :e, error_total = :t, finished_at = :now"
            " WHERE id = :id",
            {"s": status, "n": imported, "e": json.dumps(errors), "t": total, "now": db_time(utcnow()), "id": job_id},
        )


_JOB_COLUMNS = ("SELECT j.id, j.kind, c.slug AS campaign_slug, j.source, j.size_bytes, j.status, j.imported, j.errors, j.error_total,"
                " j.actor, j.started_at, j.finished_at FROM import_jobs j LEFT JOIN campaigns c ON c.id = j.campaign_id")


def get_job(conn: sqlite3.Connection, job_id: int) -> ImportJob:
    row = conn.execute(_JOB_COLUMNS + " WHERE j.id = :id", {"id": job_id}).fetchone()
    if row is None:
        raise NotFound("import job", str(job_id))
    return _job(row)


def recent_jobs(conn: sqlite3.Connection, *, campaign_slug: str | None = None, kind: str | None = None,
                limit: int = 10) -> list[ImportJob]:
    rows = conn.execute(  # each :x compared first, then tested for NULL: PostgreSQL infers its type from the comparison
        _JOB_COLUMNS + " WHERE (c.slug = :slug OR :slug IS NULL) AND (j.kind = :kind OR :kind IS NULL)"
        " ORDER BY j.id DESC LIMIT :limit",
        {"slug": campaign_slug, "kind": kind, "limit": limit},
    ).fetchall()
    return [_job(r) for r in rows]


def _job(row: sqlite3.Row) -> ImportJob:
    return ImportJob(id=row["id"], kind=row["kind"], campaign_slug=row["campaign_slug"], source=row["source"],
               size_bytes=row["size_bytes"], status=row["status"], imported=row["imported"],
               errors=json.loads(row["errors"]) if row["errors"] else [], error_total=row["error_total"] or 0,
               actor=row["actor"], started_at=row["started_at"], finished_at=row["finished_at"])
