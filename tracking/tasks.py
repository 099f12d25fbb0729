"""Celery entry points; the work is in tracking.bursts."""

from __future__ import annotations

from celery import shared_task

from tracking.bursts import reclassify_bursts


@shared_task(name="tracking.reclassify_bursts", ignore_result=True)
def reclassify_recent_bursts() -> int:
    """Apply the burst rules to the last minutes' hits; safe to run twice or at once."""
    return reclassify_bursts()
