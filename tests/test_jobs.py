"""promo/jobs.py on this run's store through the service's own store (promo.db.Database on the
SQLite file, PostgresDatabase on PostgreSQL): an upload is spooled to a
temporary file, imported in the background all or nothing, and its outcome (count, or the
errors by line) is stored for everyone; the temporary file is removed either way."""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import AsyncIterator

import pytest

from promo.config import Settings
from promo.errors import NotFound
from promo.jobs import ImportJobs, get_job, recent_jobs, spool
from tests.support.database import SLUG, product_key, reward_code
from tests.support.prepared import store_of


@pytest.fixture
async def jobs(settings: Settings, conn: sqlite3.Connection) -> AsyncIterator[ImportJobs]:
    async with store_of(settings) as db:
        running = ImportJobs(db)
        yield running
        await running.close()


async def upload(jobs: ImportJobs, kind: str, text: str, slug: str | None = SLUG) -> tuple[int, str]:
    path, size = spool(io.BytesIO(text.encode()))
    assert os.path.getsize(path) == size == len(text.encode())
    job_id = await jobs.start(kind=kind, path=path, size=size, source=f"{kind}.csv", actor="staff:m@example.com",
                              campaign_slug=slug)
    return job_id, path


async def test_a_code_upload_is_imported_in_the_background_and_its_file_removed(jobs: ImportJobs) -> None:
    job_id, path = await upload(jobs, "codes", "code\n" + "".join(f"{reward_code(n)}\n" for n in range(3)))
    job = await jobs.wait(job_id)
    assert (job.status, job.imported, job.errors, job.campaign_slug, job.source) == ("done", 3, [], SLUG, "codes.csv")
    assert job.finished_at is not None and jobs.progress(job) == 1.0 and not jobs.running_here(job_id)
    assert not os.path.exists(path)


async def test_a_bad_upload_fails_whole_with_its_errors_by_line(jobs: ImportJobs, conn: sqlite3.Connection) -> None:
    job_id, path = await upload(jobs, "codes", f"code\n{reward_code(1)}\nnot-a-code\n{reward_code(1)}\n")
    job = await jobs.wait(job_id)
    assert job.status == "failed" and job.imported is None and job.error_total == 2
    assert [(e["line"], e["field"]) for e in job.errors] == [(3, "code"), (4, "code")]
    assert "duplicate of line 2" in job.errors[1]["message"]
    assert conn.execute("SELECT COUNT(*) FROM reward_codes").fetchone()[0] == 0  # all or nothing
    assert not os.path.exists(path)


async def test_an_activation_upload_needs_no_campaign(jobs: ImportJobs) -> None:
    rows = "".join(f"{product_key(n)},O365-HOME-ESD,DK,2013-08-01,2013-08-02\n" for n in range(2))
    job_id, _ = await upload(jobs, "activations", "product_key,sku,country,purchased_at,activated_at\n" + rows, slug=None)
    job = await jobs.wait(job_id)
    assert (job.status, job.imported, job.campaign_slug) == ("done", 2, None)


async def test_an_unknown_kind_is_refused_before_anything_is_recorded(jobs: ImportJobs, conn: sqlite3.Connection) -> None:
    path, size = spool(io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        await jobs.start(kind="staff", path=path, size=size, source="x.csv", actor="test")
    os.unlink(path)
    assert conn.execute("SELECT COUNT(*) FROM import_jobs").fetchone()[0] == 0


async def test_recent_jobs_are_newest_first_and_filtered_by_campaign_and_kind(jobs: ImportJobs, conn: sqlite3.Connection) -> None:
    first, _ = await upload(jobs, "codes", f"code\n{reward_code(1)}\n")
    await jobs.wait(first)
    second, _ = await upload(jobs, "activations", "product_key,sku,country,purchased_at,activated_at\n", slug=None)
    await jobs.wait(second)
    assert [j.id for j in recent_jobs(conn)] == [second, first]
    assert [j.id for j in recent_jobs(conn, campaign_slug=SLUG)] == [first]
    assert [j.id for j in recent_jobs(conn, kind="activations")] == [second]
    with pytest.raises(NotFound):
        get_job(conn, second + 1)
