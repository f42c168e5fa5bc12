"""Receipts shown inline to reviewers (issue 19, item 9): an image receipt as it is, a PDF
receipt's first page as a PNG drawn by promo/pdf_render.py in a child process with its own
memory and CPU limits, killed after a timeout. The result is kept beside the receipts
(receipts_dir/previews/), so a claim's page renders a PDF once, and a PDF that could not be
drawn is not tried again on every view. A failure is an outcome ("could not be previewed"),
never an error: the receipt stays downloadable."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

from promo.i18n import N_, Phrase
from promo.pdf_render import MAX_INPUT_BYTES

PDF = "application/pdf"
IMAGE_TYPES = ("image/png", "image/jpeg")
TIMEOUT_SECONDS = 10.0
CONCURRENT_RENDERS = 2  # per event loop: the machine's cores are for redemptions
_renders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Preview:
    """What a reviewer's page shows: an image (its bytes' type and where they are), or why not."""

    media_type: str | None  # None: could not be previewed
    path: Path | None = None
    problem: str | None = None  # a marked message or Phrase: the reviewer's page translates it

    @property
    def shown(self) -> bool:
        return self.media_type is not None


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _renders:
        _renders[loop] = asyncio.Semaphore(CONCURRENT_RENDERS)
    return _renders[loop]


class RenderFailed(Exception):
    """This attempt did not draw the page, for a reason that may pass (too slow, no process)."""


async def render_pdf(source: Path, timeout: float = TIMEOUT_SECONDS) -> bytes | None:
    """The first page of the PDF at `source` as a PNG, or None (refused or broken: for good).
    RenderFailed when it was too slow this time or no process could be started."""
    async with _semaphore():
        try:
            with open(source, "rb") as stdin:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "promo.pdf_render", stdin=stdin, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        except OSError as exc:  # no process to be had (limits, memory): no preview, the download stays
            raise RenderFailed(N_("no process to draw it")) from exc
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RenderFailed(Phrase(N_("not drawn within %(seconds)s s"), seconds=f"{timeout:g}")) from None
    if process.returncode != 0 or not out.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return out


async def preview_of(receipts_dir: Path, receipt_file: str, receipt_type: str,
                     timeout: float = TIMEOUT_SECONDS) -> Preview:
    """The preview of a stored receipt (its file name and type found by content on upload)."""
    source = receipts_dir / receipt_file
    if not source.is_file():
        return Preview(None, problem=N_("the receipt file is missing"))
    if receipt_type in IMAGE_TYPES:
        return Preview(receipt_type, source)
    if receipt_type != PDF:
        return Preview(None, problem=Phrase(N_("a %(type)s file has no preview"), type=receipt_type))
    previews = receipts_dir / "previews"
    image, failed = previews / f"{receipt_file}.png", previews / f"{receipt_file}.failed"
    if image.is_file():
        return Preview("image/png", image)
    if failed.is_file():
        return Preview(None, problem=N_("the PDF could not be drawn"))
    if source.stat().st_size > MAX_INPUT_BYTES:
        return Preview(None, problem=N_("the PDF is too large to preview"))
    try:
        drawn = await render_pdf(source, timeout)
    except RenderFailed as exc:  # not remembered: the next view tries again
        return Preview(None, problem=exc.args[0])  # the Phrase itself, which str(exc) would flatten
    target = image if drawn is not None else failed
    try:
        previews.mkdir(mode=0o700, exist_ok=True)
        partial = previews / f"{target.name}.{secrets.token_hex(4)}.part"
        partial.write_bytes(drawn or b"")
        partial.chmod(0o600)
        partial.replace(target)  # whole or absent: a concurrent view never serves half an image
    except OSError:  # a full disk: this view says so, the next one tries again
        return Preview(None, problem=N_("the preview could not be stored"))
    return Preview("image/png", image) if drawn is not None else Preview(None, problem=N_("the PDF could not be drawn"))
