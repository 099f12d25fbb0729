"""The scheduled job that sends mass email, as django-celery-beat stores it ("Scheduled jobs")."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

TASK_NAME = "Send mass emails"
TASK = "massmail.tasks.send_mass_emails"


def _periodic_task(task: str = TASK):
    return (
        PeriodicTask.objects.filter(task=task, enabled=True)
        .select_related("interval", "crontab")
        .order_by("pk")
        .first()
    )


def tick_interval() -> timedelta | None:
    """The interval between ticks (None when no enabled schedule or not an interval)."""
    return interval_of(TASK)


def interval_of(task_name: str) -> timedelta | None:
    """The interval between runs of a scheduled job (None when it has no enabled schedule)."""
    task = _periodic_task(task_name)
    if task is None:
        return None
    if task.interval is not None:
        return task.interval.schedule.run_every
    if task.crontab is not None:
        now = timezone.now()
        first = task.crontab.schedule.remaining_estimate(now)
        return task.crontab.schedule.remaining_estimate(now + first + timedelta(seconds=1)) + first
    return None


def next_tick_at(now: datetime | None = None) -> datetime | None:
    """When beat runs the job next, or None when it is disabled."""
    now = now or timezone.now()
    task = _periodic_task()
    if task is None:
        return None
    schedule = task.schedule
    last = task.last_run_at or now
    return now + max(schedule.remaining_estimate(last), timedelta(0))
