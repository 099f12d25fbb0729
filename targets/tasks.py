"""Thin Celery tasks: take ids, re-read state, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from targets import segments
from targets.models import Segment


@shared_task
def sync_segment(segment_id: int) -> None:
    """Scheduled by the segment's PeriodicTask; a deleted or list-less segment is a no-op."""
    segment = Segment.objects.select_related("target_list").filter(pk=segment_id).first()
    if segment is not None and segment.target_list is not None:
        segments.sync_segment(segment)
