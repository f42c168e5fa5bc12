"""Render a PDF receipt's first page to a PNG, in a child process of its own
(`python -m promo.pdf_render < receipt.pdf > page.png`; promo/receipt_preview.py runs it).

A receipt is a stranger's file: PDFium parses it here, in a process that limits its own
memory and CPU time before it reads a byte, refuses a document of too many pages and draws
no more than MAX_PIXELS, so a hostile file can crash or stall only this process (the server
kills it after a timeout) and never the server. Exit status 0 with a PNG on stdout, else
non-zero with one line on stderr saying why."""

from __future__ import annotations

import resource
import struct
import sys
import zlib

MAX_INPUT_BYTES = 20_000_000  # above reviews.max_receipt_bytes' default; a larger stdin is refused
MAX_PAGES = 50  # a receipt is a page or two; a "receipt" of thousands of pages is not one
MAX_SIDE = 1600  # pixels on the longer side of the image
MAX_PIXELS = MAX_SIDE * MAX_SIDE
MAX_SCALE = 2.0  # 144 dpi: a small page is not blown up beyond readability
MEMORY_BYTES = 768 * 1024 * 1024  # address space of this process (PDFium and Python included)
CPU_SECONDS = 8


class RenderRefused(Exception):
    """The document cannot be previewed (too many pages, no page, an absurd page size)."""


def limit_self() -> None:
    """Cap this process's memory and CPU time (the kernel enforces them)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def png(width: int, height: int, rows: bytes, stride: int) -> bytes:
    """An 8-bit RGB PNG from `height` rows of `stride` bytes each (3 bytes a pixel, then padding)."""
    row_bytes = width * 3
    raw = b"".join(b"\x00" + rows[y * stride: y * stride + row_bytes] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def scale_for(width_pt: float, height_pt: float) -> float:
    """The rendering scale that keeps the page within MAX_SIDE and MAX_PIXELS."""
    if not (1 <= width_pt <= 14_400 and 1 <= height_pt <= 14_400):  # PDF's own limit is 200 inches
        raise RenderRefused(f"page size {width_pt:.0f} x {height_pt:.0f} pt is not a receipt's")
    scale = min(MAX_SCALE, MAX_SIDE / max(width_pt, height_pt))
    while (width_pt * scale) * (height_pt * scale) > MAX_PIXELS:
        scale *= 0.9
    return scale


def first_page_png(data: bytes) -> bytes:
    """The first page of the PDF in `data` as a PNG (PdfiumError or RenderRefused otherwise)."""
    import pypdfium2 as pdfium  # imported after limit_self(): the library loads inside the limits

    document = pdfium.PdfDocument(data)
    try:
        pages = len(document)
        if pages < 1:
            raise RenderRefused("the document has no page")
        if pages > MAX_PAGES:
            raise RenderRefused(f"the document has {pages} pages (at most {MAX_PAGES} are previewed)")
        page = document[0]
        width_pt, height_pt = page.get_size()
        bitmap = page.render(scale=scale_for(width_pt, height_pt), rev_byteorder=True, may_draw_forms=False,
                             fill_color=(255, 255, 255, 255))
        if bitmap.n_channels != 3:
            raise RenderRefused(f"unexpected pixel format with {bitmap.n_channels} channels")
        return png(bitmap.width, bitmap.height, bytes(bitmap.buffer), bitmap.stride)
    finally:
        document.close()


def main() -> int:
    limit_self()
    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        print(f"larger than {MAX_INPUT_BYTES} bytes", file=sys.stderr)
        return 2
    try:
        image = first_page_png(data)
    except RenderRefused as exc:
        print(str(exc), file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - PDFium's errors on a broken file: reported, not raised
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 4
    sys.stdout.buffer.write(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
