"""A PDF receipt's first page drawn in a bounded way (issue 19, item 9): a child process with
its own limits, a page count and pixel budget, a timeout; every failure is None, never an
exception in the server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from promo import pdf_render
from promo.pdf_render import MAX_PAGES, MAX_SIDE, RenderRefused, first_page_png, scale_for
from promo.receipt_preview import RenderFailed, preview_of, render_pdf
from tests.support.review_fixtures import HOSTILE_PDF, RECEIPT_PDF, decode_png, minimal_pdf


def test_the_first_page_is_drawn_within_the_pixel_budget() -> None:
    width, height, _ = decode_png(first_page_png(RECEIPT_PDF))
    assert (width, height) == (400, 200)
    width, height, _ = decode_png(first_page_png(minimal_pdf(b"", width=14_400, height=7_200)))
    assert width <= MAX_SIDE and height <= MAX_SIDE and width * height <= MAX_SIDE * MAX_SIDE
    assert scale_for(10_000, 10_000) * 10_000 <= MAX_SIDE


@pytest.mark.parametrize(("document", "why"), [
    (minimal_pdf(b"", pages=MAX_PAGES + 1), "pages"),
    (minimal_pdf(b"", width=20_000, height=100), "page size"),
])
def test_documents_that_are_no_receipt_are_refused(document: bytes, why: str) -> None:
    with pytest.raises(RenderRefused, match=why):
        first_page_png(document)


def test_the_child_process_limits_itself_and_reports_failures() -> None:
    out = subprocess.run([sys.executable, "-m", "promo.pdf_render"], input=HOSTILE_PDF, capture_output=True, timeout=30)
    assert out.returncode == 4 and out.stdout == b"" and b"PdfiumError" in out.stderr
    probe = "import resource, promo.pdf_render as r; r.limit_self(); print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    limited = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert int(limited.stdout) == pdf_render.MEMORY_BYTES


def test_a_render_that_takes_too_long_is_killed(tmp_path: Path) -> None:
    source = tmp_path / "receipt"
    source.write_bytes(RECEIPT_PDF)
    with pytest.raises(RenderFailed, match="not drawn within"):
        asyncio.run(render_pdf(source, timeout=0.001))
    slow = asyncio.run(preview_of(tmp_path, "receipt", "application/pdf", timeout=0.001))
    assert not slow.shown and "not drawn within" in (slow.problem or "")
    assert not (tmp_path / "previews").exists()  # too slow is not remembered as broken: tried again next time
    drawn = asyncio.run(render_pdf(source))
    assert drawn is not None and decode_png(drawn)[:2] == (400, 200)


def test_a_failed_preview_is_remembered_and_the_receipt_kept(tmp_path: Path) -> None:
    (tmp_path / "abc").write_bytes(HOSTILE_PDF)
    first = asyncio.run(preview_of(tmp_path, "abc", "application/pdf"))
    assert not first.shown and first.problem == "the PDF could not be drawn"
    assert (tmp_path / "previews" / "abc.failed").is_file() and (tmp_path / "abc").read_bytes() == HOSTILE_PDF
    assert not asyncio.run(preview_of(tmp_path, "missing", "application/pdf")).shown
