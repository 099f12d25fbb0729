"""Classify returned messages saved as files: a look at what the bounce scanner would do.

Reads only the files; never touches the database.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bounces.classify import Report, classify

COLUMNS = ("file", "address", "verdict", "status", "reason")


class Command(BaseCommand):
    help = "Classify bounce messages (.eml files) and print one verdict per recipient."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--json", action="store_true", help="one JSON object per file")

    def handle(self, *args: object, **options: object) -> None:
        rows: list[tuple[str, ...]] = []
        unreadable = 0
        for name in options["files"]:  # type: ignore[union-attr]
            try:
                raw = Path(name).read_bytes()
            except OSError as error:
                unreadable += 1
                self.stderr.write(f"{name}: cannot read: {error.strerror or error}")
                continue
            report = classify(raw)
            if options["json"]:
                self.stdout.write(json.dumps(as_json(name, report)))
            else:
                rows += table_rows(name, report)
        if not options["json"]:
            self.stdout.write(format_table(rows))
        if unreadable:
            raise CommandError(f"{unreadable} file(s) could not be read", returncode=2)


def as_json(name: str, report: Report) -> dict:
    recipients = [
        {"address": v.address, "verdict": v.verdict, "status": v.status, "reason": v.reason}
        for v in report.recipients
    ]
    return {
        "file": name,
        "recipients": recipients,
        "queue_item_id": report.queue_item_id,
        "verp_token": report.verp_token,
    }


def table_rows(name: str, report: Report) -> list[tuple[str, ...]]:
    if not report.recipients:
        label = "auto-reply" if report.is_auto_reply else "not a bounce"
        return [(name, "-", label, "", "")]
    return [(name, v.address, v.verdict, v.status, v.reason) for v in report.recipients]


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [COLUMNS, *rows]
    ]
    return "\n".join(lines)
