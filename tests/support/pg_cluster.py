"""A private PostgreSQL cluster on its own port, for tests that stop and restart the server
(issue 18, item 5). The shared server on 5432 is never restarted: other people's tests use it.

initdb and pg_ctl refuse to run as root; as root they run as the `postgres` user, in a folder
under /tmp that user can reach (pytest's tmp_path is private to root), removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.mailserver import free_port

BIN = Path(os.environ.get("PROMO_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class Cluster:
    def __init__(self, folder: Path, port: int, user: str | None):
        self.folder, self.port, self._user = folder, port, user
        self.data, self.log = folder / "data", folder / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{command[0]} failed: {done.stdout}{done.stderr}"

    def initdb(self) -> None:
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")

    def start(self) -> None:
        """Start and wait until it accepts connections (pg_ctl -w)."""
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=40 "
                   "-c shared_buffers=16MB")
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """fast: roll back open transactions, disconnect everyone, checkpoint (a restart's
        first half); immediate: as a crash (recovery from the WAL on the next start)."""
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def accepts(self) -> bool:
        try:
            psycopg.connect(self.url(), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def private_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh cluster, started; stopped and removed afterwards."""
    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="promo-pg-")) if user else tmp_path / "pg"
    folder.mkdir(exist_ok=True)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(folder, free_port(), user)
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            cluster.stop("immediate")
        if user:
            shutil.rmtree(folder, ignore_errors=True)

