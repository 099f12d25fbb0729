"""Every CSV download (target lists, the campaign log): streamed, and safe to open.

A spreadsheet runs a cell starting with =, +, -, @, tab or CR as a formula
(CSV injection: a contact named `=HYPERLINK(...)` would run on the marketer's
machine), so such cells are written with a leading apostrophe, which the
spreadsheet shows as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() hands the line back to csv.writer's caller."""

    def write(self, value: str) -> str:
        return value


def spreadsheet_cell(value: object) -> str:
    """The cell's text: dates as ISO 8601, nothing for None, formulas defused."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([spreadsheet_cell(value) for value in row])


def csv_download(
    header: Iterable[str], rows: Iterable[Iterable[object]], filename: str
) -> StreamingHttpResponse:
    """A streamed attachment; `rows` is read as the response is sent."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
