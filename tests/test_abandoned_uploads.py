"""Uploads nobody imports are deleted after a while; files of runs that imported stay."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from targets import importing
from targets.models import ImportRun, TargetList
from targets.registry import target_type_by_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    importing.uploads_directory().mkdir(parents=True)


def _upload(name: str, status: str, age: timedelta) -> tuple[ImportRun, Path]:
    path = importing.uploads_directory() / f"{name}.csv"
    path.write_text("email\na@example.com\n")
    run = ImportRun.objects.create(
        target_list=TargetList.objects.get_or_create(name="L")[0],
        target_type=target_type_by_key("contact").content_type,
        file_name=f"{name}.csv",
        file_path=str(path),
        checksum=name,
        status=status,
    )
    ImportRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - age)
    return run, path


def _stray(name: str, age: timedelta) -> Path:
    path = importing.uploads_directory() / f"{name}.csv"
    path.write_text("email\n")
    stamp = (timezone.now() - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_abandoned_uploads_and_stray_files_go_the_rest_stays():
    abandoned, abandoned_file = _upload("abandoned", "pending", timedelta(days=8))
    fresh, fresh_file = _upload("fresh", "pending", timedelta(days=2))
    failed, failed_file = _upload("failed", "failed", timedelta(days=30))
    old_stray = _stray("old-stray", timedelta(days=2))
    new_stray = _stray("new-stray", timedelta(minutes=5))  # an upload being recorded now

    assert importing.discard_abandoned_uploads() == 2
    assert not abandoned_file.exists() and not old_stray.exists()
    assert not ImportRun.objects.filter(pk=abandoned.pk).exists()
    assert fresh_file.exists() and failed_file.exists() and new_stray.exists()
    assert set(ImportRun.objects.values_list("pk", flat=True)) == {fresh.pk, failed.pk}
    assert importing.discard_abandoned_uploads() == 0


def test_a_missing_uploads_directory_is_nothing_to_do(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "nowhere"
    assert importing.discard_abandoned_uploads() == 0


def test_it_runs_daily_from_beat():
    task = PeriodicTask.objects.get(task="targets.discard_abandoned_uploads")
    assert task.enabled and (task.interval.every, task.interval.period) == (1, "days")


def _upload_into_a_new_list(admin_client):
    upload = SimpleUploadedFile("people.csv", b"email,last_name\na@example.com,A\n")
    return admin_client.post(
        "/admin/targets/targetlist/import/",
        {"file": upload, "target_type": "Contact", "new_list_name": "Spring fair"},
    )


def test_an_upload_naming_a_new_list_creates_it_only_when_the_import_starts(admin_client):
    response = _upload_into_a_new_list(admin_client)
    run = ImportRun.objects.get()
    assert (run.target_list, run.new_list_name) == (None, "Spring fair")
    assert not TargetList.objects.exists()
    page = admin_client.get(response.url).content.decode()
    assert "Spring fair" in page and "created when the import starts" in page

    ImportRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(days=8))
    assert importing.discard_abandoned_uploads() == 1
    assert not ImportRun.objects.exists() and not TargetList.objects.exists()


def test_the_new_list_is_there_once_imported(admin_client):
    response = _upload_into_a_new_list(admin_client)
    admin_client.post(response.url, {"email": "email", "last_name": "last_name", "_import": "1"})
    run = ImportRun.objects.get()
    assert run.status == "done" and run.target_list.name == "Spring fair"
    assert run.target_list.entry_count() == 1
