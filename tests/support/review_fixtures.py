"""Claims and receipts for the review queue's tests (issue 19, item 9): real PDFs and PNGs,
made here, and claims submitted through promo.reviews into a real database."""

from __future__ import annotations

import sqlite3
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from promo.activations import Activation
from promo.db import transaction
from promo.pdf_render import png
from promo.reviews import store_receipt, submit_claim
from tests.support.database import product_key
from tests.support.mailserver import MailServer
from tests.support.web import ANN, follow_link, hidden, redeem_form, sign_in, submit

DAY = datetime.now(UTC).date() - timedelta(days=2)


def minimal_pdf(content: bytes, width: int = 200, height: int = 100, pages: int = 1) -> bytes:
    """A valid PDF written by hand: `pages` pages of width x height points, each drawing
    `content` (a content stream such as b"0 0 0 rg 0 0 100 100 re f")."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for n in range(pages):
        page_id, content_id = 3 + 2 * n, 4 + 2 * n
        kids.append(f"{page_id} 0 R".encode())
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R /Resources << >> >>"
                       % (width, height, content_id))
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % pages
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


# A receipt: a white page with a black box on its left half.
RECEIPT_PDF = minimal_pdf(b"0 0 0 rg 0 0 100 100 re f")
HOSTILE_PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n1 0 obj << /Type /Catalog /Pages 9 0 R >> trailer <<>>"


def red_png(width: int = 4, height: int = 3) -> bytes:
    return png(width, height, b"\xff\x00\x00" * width * height, width * 3)


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB PNG without filters (pdf_render.png's)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) == (8, 2)
    chunks, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            chunks += data[at + 8:at + 8 + length]
        at += 12 + length
    raw, stride = zlib.decompress(chunks), 1 + width * 3
    rows = [raw[y * stride + 1:(y + 1) * stride] for y in range(height)]
    assert all(raw[y * stride] == 0 for y in range(height))  # filter type 0 on every row
    return width, height, rows


def add_claim(conn: sqlite3.Connection, receipts: Path, *, account: str, key: int, receipt: bytes = RECEIPT_PDF,
              ip: str | None = "192.0.2.1", campaign: str = "open-today") -> int:
    """A claim for an unknown key (R-X11) with `receipt`, as the consumer's form submits it."""
    name, kind = store_receipt(receipts, receipt, 5_000_000)
    evidence = Activation(product_key(key).replace("-", ""), "O365-HOME-ESD", "DK", "DK", DAY, DAY, None)
    with transaction(conn):
        return submit_claim(conn, campaign=campaign, account_email=account, activation=evidence, receipt_file=name,
                            kind=kind, locale="en", ip=ip, now=datetime.now(UTC))


PDF = b"%PDF-1.4\n% a receipt\n"


UNKNOWN_KEY = "QQQQQ-QQQQQ-QQQQQ-QQQQQ-QQQQ1"


DAY_FIELD = DAY.isoformat()  # a form's date inside the open-today offer's window


def ask_for_review(client: TestClient, smtp: MailServer, receipt: bytes = PDF, account: str = ANN,  # type: ignore[no-untyped-def]
                   lang: str | None = None):
    follow_link(client, sign_in(client, smtp, account))
    refused = submit(client, redeem_form(client), UNKNOWN_KEY)
    assert "R-X11" in refused.text and "Ask for a manual review with your receipt" in refused.text
    if lang:  # the claim remembers the language it was made in, for the emails about it
        client.headers["Accept-Language"] = lang
    form = client.get(f"/offers/open-today/review?product_key={UNKNOWN_KEY}")
    assert form.status_code == 200 and UNKNOWN_KEY in form.text
    return client.post("/offers/open-today/review", data={
        "csrf": hidden(form.text, "csrf"), "product_key": UNKNOWN_KEY, "sku": "O365-HOME-ESD", "country": "DK",
        "purchased_at": DAY_FIELD, "activated_at": DAY_FIELD}, files={"receipt": ("receipt.pdf", receipt, "application/pdf")})
