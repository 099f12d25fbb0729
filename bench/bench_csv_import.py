"""How fast `import_targets` imports a 100,000-row CSV file of contacts on PostgreSQL.

Writes the file (with a few bad rows: invalid address, missing last name,
duplicate), then times in the same run:
- the command itself (batches of bulk_create/bulk_update, progress bar on stderr);
- re-importing the same file (every row matched by address, nothing changes);
- the baseline: a naive per-row ORM import (validate, create, set addresses, add
  to the list) over a sample of rows, extrapolated.

    .venv/bin/python bench/bench_csv_import.py [--rows 100000] [--sample 2000]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from io import StringIO
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
benchdb.use_database("targets")

import django  # noqa: E402

django.setup()

from django.core.exceptions import ValidationError  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from targets.models import Contact, TargetList, validate_address  # noqa: E402


def empty_tables() -> None:
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE targets_contact, targets_emailaddress, targets_recordemailaddress,"
            " targets_targetlistmember, targets_targetlist, targets_importrun"
            " RESTART IDENTITY CASCADE"
        )


def write_file(path: Path, rows: int, prefix: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["E-mail", "Vorname", "Nachname", "City", "Country"])
        for n in range(1, rows + 1):
            address = f"{prefix}{n}@example.com"
            if n % 10_000 == 1:
                address = f"broken-{n}"  # invalid
            elif n % 10_000 == 2:
                address = f"{prefix}1@example.com" if n > 2 else address  # duplicate
            writer.writerow(
                [address, f"First{n}", "" if n % 10_000 == 3 else f"Last{n}", "Bonn", "Germany"]
            )


def naive_import(path: Path, sample: int) -> float:
    """Per-row ORM saves: what the batches replace."""
    target_list = TargetList.objects.create(name="Naive")
    with open(path, newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))[:sample]
    started = time.perf_counter()
    for row in rows:
        try:
            address = validate_address(row["E-mail"])
        except ValidationError:
            continue
        if not row["Nachname"]:
            continue
        contact = Contact.objects.create(
            first_name=row["Vorname"], last_name=row["Nachname"], city=row["City"]
        )
        contact.set_email_addresses(address)
        target_list.add(contact)
    return time.perf_counter() - started


def run_command(path: Path, list_name: str) -> tuple[float, str]:
    out = StringIO()
    started = time.perf_counter()
    call_command(
        "import_targets",
        str(path),
        "--type",
        "contact",
        "--list",
        list_name,
        "--batch-size",
        "2000",
        stdout=out,
    )
    return time.perf_counter() - started, out.getvalue().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    empty_tables()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "contacts.csv"
        write_file(path, args.rows, "person")
        first_seconds, first_summary = run_command(path, "Imported")
        again_seconds, again_summary = run_command(path, "Imported")
        naive_path = Path(directory) / "naive.csv"
        write_file(naive_path, args.sample, "naive")
        naive_seconds = naive_import(naive_path, args.sample)

    n = args.rows
    naive_rate = args.sample / naive_seconds
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, PostgreSQL {connection.pg_version // 10000},"
        f" load average {load} (other work on the machine slows every figure alike)"
    )
    print(f"import_targets, {n:,} rows:  {first_seconds:6.2f} s  {n / first_seconds:>8,.0f} rows/s")
    print(f"  {first_summary}")
    print(f"re-import of the same file:  {again_seconds:6.2f} s  {n / again_seconds:>8,.0f} rows/s")
    print(f"  {again_summary}")
    print(
        f"baseline naive per-row ORM import: {args.sample:,} rows in {naive_seconds:.2f} s"
        f" = {naive_rate:,.0f} rows/s -> {n / naive_rate:,.0f} s for {n:,}"
    )
    print(f"ratio (import_targets / naive): {n / first_seconds / naive_rate:,.1f}x")


if __name__ == "__main__":
    main()
