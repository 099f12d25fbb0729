"""Thin Celery tasks: take ids, re-read state, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

from targets import importing, segments
from targets.models import ImportRun, Segment

logger = logging.getLogger(__name__)


@shared_task
def sync_segment(segment_id: int) -> None:
    """Scheduled by the segment's PeriodicTask; a deleted or list-less segment is a no-op."""
    segment = Segment.objects.select_related("target_list").filter(pk=segment_id).first()
    if segment is not None and segment.target_list is not None:
        segments.sync_segment(segment)


@shared_task
def import_upload(run_id: int) -> None:
    """A large admin upload; a finished or deleted run is a no-op, a failed one resumes."""
    run = ImportRun.objects.select_related("target_list").filter(pk=run_id).first()
    if run is not None and run.status != ImportRun.Status.DONE and run.file_path:
        try:
            importing.import_stored_upload(run)
        except importing.ImportBusy as busy:  # a redelivered task: the first one goes on
            logger.info("%s", busy)


@shared_task
def preview_upload(run_id: int, key: str) -> None:
    """A large admin upload's dry run; a deleted run or a newer preview makes it a no-op."""
    run = ImportRun.objects.filter(pk=run_id).first()
    if run is not None and run.preview.get("key") == key and run.preview.get("state") != "done":
        importing.preview_stored_upload(run, key)


@shared_task(name="targets.discard_abandoned_uploads", ignore_result=True)
def discard_abandoned_uploads() -> int:
    """Daily: uploads nobody mapped for a week, and stray files, are deleted."""
    return importing.discard_abandoned_uploads()
