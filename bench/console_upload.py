"""Uploading 1,000,000 codes through the marketer console, end to end (`scripts/bench upload`).

Starts `promo serve` on a fresh SQLite file, signs a marketer in through the staff
sign-in form, posts a 1,000,000-code CSV as the browser's form does, then polls the job
page (as its auto-refresh does) until the import is done. Prints the upload request's
time, the import's time, the progress the page showed, and how long the job page took
to answer while the import held the write lock (the page must not hang). Writes
bench/upload-results.json. Targets 127.0.0.1 only and stops by itself."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data import code  # noqa: E402
from bench.run import PROMO, new_offer, peak_rss_mb, serve_env, wait_ready  # noqa: E402
from promo.db import connect, transaction  # noqa: E402
from promo.passwords import hash_password  # noqa: E402
from promo.staff import add_staff  # noqa: E402
from tests.support.mailserver import free_port  # noqa: E402
from tests.support.served import write_config  # noqa: E402

CODES = 1_000_000
PASSWORD = "bench marketer passphrase"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="promo-bench-upload-"))
    db_path = work / "bench.sqlite3"
    config = write_config(work, db_path)
    conn = connect(db_path)
    now = datetime.now(UTC)
    new_offer(conn, now)
    with transaction(conn):
        add_staff(conn, email="marketer@bench.example", role="marketer", password_hash=hash_password(PASSWORD), now=now, actor="bench")
    conn.close()
    csv_path = work / "codes.csv"
    with open(csv_path, "w") as out:
        out.write("code\n")
        out.writelines(f"{code(i)}\n" for i in range(CODES))
    size = csv_path.stat().st_size

    port = free_port()
    env = serve_env(config, PROMO_SERVER_PORT=str(port), PROMO_SERVER_PUBLIC_URL=f"http://127.0.0.1:{port}")
    server = subprocess.Popen([PROMO, "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, object] = {"when": now.isoformat(timespec="seconds"), "codes": CODES, "file_mb": round(size / 1e6, 1)}
    try:
        wait_ready(f"{base}/healthz", server)
        with httpx.Client(base_url=base, timeout=120) as client:
            form = client.get("/staff/signin")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
            signed = client.post("/staff/signin", data={"csrf": token, "email": "marketer@bench.example", "password": PASSWORD,
                                                        "next": "/console/"})
            assert signed.status_code == 303, signed.text
            page = client.get("/console/campaigns/bench")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

            print(f"uploading {CODES:,} codes ({size / 1e6:.1f} MB)…", flush=True)
            started = time.perf_counter()
            with open(csv_path, "rb") as upload:
                posted = client.post("/console/campaigns/bench/codes", data={"csrf": csrf},
                                     files={"file": ("codes.csv", upload, "text/csv")})
            answered = time.perf_counter()
            assert posted.status_code == 303, posted.text[:500]
            job_path = posted.headers["location"]
            progress: list[str] = []
            slowest_page = 0.0
            while True:
                asked = time.perf_counter()
                job = client.get(job_path)
                slowest_page = max(slowest_page, time.perf_counter() - asked)
                shown = re.search(r'<progress id="job-progress" max="100" value="(\d+)">', job.text)
                if shown and (not progress or progress[-1] != shown.group(1)):
                    progress.append(shown.group(1))
                if "Done:" in job.text or "Nothing was imported" in job.text:
                    break
                time.sleep(0.25)
            finished = time.perf_counter()
            assert "Done:" in job.text, job.text[-2000:]
            stock = client.get("/console/campaigns/bench").text
            available = re.search(r'data-status="available">([\d,]+)<', stock).group(1)  # type: ignore[union-attr]
        results.update({
            "upload_request_s": round(answered - started, 2),
            "import_after_upload_s": round(finished - answered, 2),
            "total_s": round(finished - started, 2),
            "progress_shown_percent": [int(p) for p in progress],
            "slowest_job_page_s": round(slowest_page, 3),
            "available_after": int(available.replace(",", "")),
            "server_peak_rss_mb": peak_rss_mb(server.pid),
        })
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    print(f"{'upload request (form post, file spooled)':<44} {results['upload_request_s']:>8} s")
    print(f"{'import after the request (background job)':<44} {results['import_after_upload_s']:>8} s")
    print(f"{'total, upload to done':<44} {results['total_s']:>8} s   (target: no timeout, page responsive)")
    print(f"{'slowest job page while importing':<44} {results['slowest_job_page_s']:>8} s")
    print(f"{'progress the page showed (%)':<44} {results['progress_shown_percent']}")
    print(f"{'available codes afterwards':<44} {results['available_after']:>8,}")
    print(f"{'server peak RSS':<44} {results['server_peak_rss_mb']:>8} MB (target: < 300 MB)")
    (ROOT / "bench" / "upload-results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
