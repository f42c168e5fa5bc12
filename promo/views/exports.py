"""Streamed downloads of staff records (the decision log, staff actions): CSV that no
spreadsheet runs as a formula, and a JSON array, both written chunk by chunk so an export of
millions of rows never sits in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

from starlette.responses import StreamingResponse

Row = TypeVar("Row")


def csv_safe(value: Any) -> str:
    """No spreadsheet formulas from data (=cmd, +, -, @, tab, CR): prefix them with a quote."""
    text = " ".join(value) if isinstance(value, list) else ("" if value is None else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def csv_download(chunks: AsyncIterator[list[Row]], columns: tuple[str, ...], cells: Callable[[Row], Iterable[Any]],
                 filename: str) -> StreamingResponse:
    """A header line of `columns`, then `cells(row)` for each row, every cell made formula-safe."""

    async def body() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        async for chunk in chunks:
            for row in chunk:
                writer.writerow([csv_safe(cell) for cell in cells(row)])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=_attachment(filename))


def json_download(chunks: AsyncIterator[list[Row]], as_dict: Callable[[Row], dict[str, Any]],
                  filename: str) -> StreamingResponse:
    """One JSON array, an object per row."""

    async def body() -> AsyncIterator[str]:
        yield "["
        first = True
        async for chunk in chunks:
            parts = []
            for row in chunk:
                parts.append(("" if first else ",") + "\n" + json.dumps(as_dict(row), ensure_ascii=False))
                first = False
            yield "".join(parts)
        yield "\n]\n"

    return StreamingResponse(body(), media_type="application/json", headers=_attachment(filename))
