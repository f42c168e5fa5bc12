"""`promo serve` processes on one PostgreSQL database, as several instances behind a proxy run
(issue 18): each started on a free port and waited for until /readyz answers 200."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.served import launch, wait_ready

SECRET = "k" * 48  # every instance signs with the same key: a session made by one is good on all


def instance_config(folder: Path, url: str, *, pool_size: int = 3, mail: str = "sink = false\nrelay = false") -> Path:
    """A config.toml for instances of one service: the database, a small pool (the shared
    server's connections are counted), no mail sink and no relay (no SMTP server here)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'[database]\nurl = "{url}"\npool_size = {pool_size}', f"[mail]\n{mail}", '[logging]\nlevel = "WARNING"']
    config = folder / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


@dataclass
class Instance:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_instance(config: Path, log: Path, *args: str, **env: str) -> Instance:
    """`promo serve [args]` on a free port, signing with SECRET, once /readyz answers 200
    (served.launch and wait_ready; stopped, and failing with its log, otherwise)."""
    process, served = launch(config, log, *args, PROMO_SECURITY_SECRET_KEY=SECRET, **env)
    instance = Instance(served.url, process, log)
    try:
        wait_ready(process, served, timeout=60)
    except BaseException:
        instance.stop()
        raise
    return instance


@contextmanager
def instances(config: Path, folder: Path, count: int, *args: str, **env: str) -> Iterator[list[Instance]]:
    started: list[Instance] = []
    try:
        for n in range(count):
            started.append(start_instance(config, folder / f"instance{n}.log", *args, **env))
        yield started
    finally:
        for instance in started:
            instance.stop()

