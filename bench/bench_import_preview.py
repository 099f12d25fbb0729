"""How long the admin's Preview request takes for a 100,000-row CSV upload on PostgreSQL.

In the same run, through the real admin views (Django's test client, logged in
as a superuser):
- before: the dry run inside the request (as every preview was; forced here by
  raising INLINE_IMPORT_LINES above the file's length);
- after: the request only records the preview and queues the Celery task; the
  task (run here in this process, as a worker would) reads the file, and the
  page's progress poll is timed too.
gunicorn kills a request after 30 s (config/gunicorn.py): the figure that
matters is the request's.

    .venv/bin/python bench/bench_import_preview.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import benchdb
from bench_csv_import import empty_tables, write_file

benchdb.use_database("targets")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from targets import importing, tasks  # noqa: E402
from targets.models import ImportRun  # noqa: E402

MAPPING = {"email": "E-mail", "first_name": "Vorname", "last_name": "Nachname", "city": "City"}


def upload(client: Client, path: Path) -> str:
    with open(path, "rb") as source:
        data = {
            "file": SimpleUploadedFile("contacts.csv", source.read()),
            "target_type": "Contact",
            "new_list_name": f"Bench {time.time_ns()}",
        }
    response = client.post("/admin/targets/targetlist/import/", data)
    assert response.status_code == 302, response.content[:500]
    return response.url


def timed_preview(client: Client, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.post(url, {**MAPPING, "_preview": "1"})
    return time.perf_counter() - started, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    empty_tables()
    queued: list[tuple] = []
    tasks.preview_upload.delay = lambda *task_args: queued.append(task_args)
    client = benchdb.admin_client()
    with tempfile.TemporaryDirectory() as directory:
        settings.MEDIA_ROOT = directory
        path = Path(directory) / "contacts.csv"
        write_file(path, args.rows, "person")

        inline_limit = importing.INLINE_IMPORT_LINES
        importing.INLINE_IMPORT_LINES = args.rows + 10
        before_seconds, before_status = timed_preview(client, upload(client, path))
        importing.INLINE_IMPORT_LINES = inline_limit

        url = upload(client, path)
        after_seconds, after_status = timed_preview(client, url)
        run_id, key = queued[-1]
        started = time.perf_counter()
        tasks.preview_upload(run_id, key)
        task_seconds = time.perf_counter() - started
        started = time.perf_counter()
        poll = client.get(f"/admin/targets/targetlist/import/{run_id}/preview/").json()
        poll_seconds = time.perf_counter() - started
        started = time.perf_counter()
        page = client.get(url)
        page_seconds = time.perf_counter() - started
        report = ImportRun.objects.get(pk=run_id).preview["report"]

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, PostgreSQL {connection.pg_version // 10000},"
        f" load average {load} (other work on the machine slows every figure alike)"
    )
    print(f"Preview of a {args.rows:,}-row upload, request time:")
    print(f"  before (dry run in the request):  {before_seconds:7.2f} s  (HTTP {before_status})")
    print(f"  after (queued for Celery):        {after_seconds:7.3f} s  (HTTP {after_status})")
    print(f"  ratio before / after: {before_seconds / after_seconds:,.0f}x")
    print(f"the task's dry run (in a worker):   {task_seconds:7.2f} s")
    print(f"progress poll: {poll_seconds * 1000:.1f} ms -> {poll}")
    print(f"the page with the report:           {page_seconds:7.3f} s (HTTP {page.status_code})")
    print(
        f"  report: {report['rows']:,} rows, {report['created']:,} new,"
        f" {report['error_count']} with errors"
    )


if __name__ == "__main__":
    main()
