"""One import run is imported by one process at a time; a crashed one can be resumed."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from targets import importing
from targets.models import Contact, ImportRun, TargetList
from targets.registry import target_type_by_key
from tests.services import require_postgres

pytestmark = pytest.mark.django_db

MAPPING = {"email": "email", "last_name": "last_name"}


def _file(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "people.csv"
    lines = ["email,last_name"] + [f"p{n}@example.com,P{n}" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(path: Path) -> tuple[ImportRun, importing.CsvFile]:
    csv_file = importing.open_csv(path)
    target_list, _ = TargetList.objects.get_or_create(name="Imported")
    run = importing.resumable_run(csv_file, target_type_by_key("contact"), target_list, MAPPING)
    return run, csv_file


def test_a_run_held_by_another_process_is_refused_and_left_untouched(tmp_path):
    run, csv_file = _run(_file(tmp_path, 3))
    held_until = timezone.now() + timedelta(minutes=5)
    ImportRun.objects.filter(pk=run.pk).update(status="running", lease_until=held_until)
    with pytest.raises(importing.ImportBusy, match="already being imported by another process"):
        importing.run_import(run, csv_file, target_type_by_key("contact"))
    assert not Contact.objects.exists()
    run.refresh_from_db()
    assert (run.status, run.line_done, run.lease_until) == ("running", 0, held_until)


def test_a_crashed_runs_claim_runs_out_and_the_run_resumes(tmp_path):
    run, csv_file = _run(_file(tmp_path, 3))
    # A process died after committing the first row's batch and renewing its claim.
    claimed = timezone.now()
    ImportRun.objects.filter(pk=run.pk).update(
        status="running", line_done=2, lease_until=claimed + importing.IMPORT_LEASE
    )
    run.refresh_from_db()
    with time_machine.travel(claimed + timedelta(minutes=1)):
        with pytest.raises(importing.ImportBusy):
            importing.run_import(run, csv_file, target_type_by_key("contact"))
    with time_machine.travel(claimed + importing.IMPORT_LEASE + timedelta(seconds=1)):
        report = importing.run_import(run, csv_file, target_type_by_key("contact"))
    assert report.resumed_after_line == 2 and report.created == 2
    run.refresh_from_db()
    assert (run.status, run.lease_until) == ("done", None)


def test_each_committed_batch_renews_the_claim(tmp_path, monkeypatch):
    run, csv_file = _run(_file(tmp_path, 4))
    seen = []
    real_write = importing.write_batch

    def write_and_look(*args, **kwargs):
        real_write(*args, **kwargs)
        seen.append(ImportRun.objects.get(pk=run.pk).lease_until)

    monkeypatch.setattr(importing, "write_batch", write_and_look)
    importing.run_import(run, csv_file, target_type_by_key("contact"), batch_size=2)
    assert len(seen) == 2 and all(until > timezone.now() for until in seen)


def test_the_command_says_the_run_is_busy(tmp_path):
    path = _file(tmp_path, 2)
    run, _ = _run(path)
    ImportRun.objects.filter(pk=run.pk).update(
        status="running", lease_until=timezone.now() + timedelta(minutes=5)
    )
    with pytest.raises(CommandError, match=f"Import run #{run.pk}"):
        call_command(
            "import_targets", str(path), "--type", "contact", "--list", "Imported",
            "--map", "email=email", "--map", "last_name=last_name",
        )  # fmt: skip
    assert not Contact.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_processes_starting_one_run_together_import_it_once(tmp_path):
    require_postgres()  # SQLite serialises whole transactions anyway
    run, csv_file = _run(_file(tmp_path, 300))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            mine = importing.open_csv(csv_file.path)
            importing.run_import(run, mine, target_type_by_key("contact"), batch_size=10)
            outcomes.append("imported")
        except importing.ImportBusy:
            outcomes.append("busy")
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["busy", "imported"]
    assert Contact.objects.count() == 300
    run.refresh_from_db()
    assert (run.status, run.created_count, run.lease_until) == ("done", 300, None)
