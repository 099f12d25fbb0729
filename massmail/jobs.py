"""When the scheduled jobs last ran, and whether one is overdue.

Each run of a watched job writes its start and end (a JobRun row), whatever the
broker; beat's own bookkeeping only says when it *sent* a job, not that a worker
ran it. A job is overdue when its last start is more than OVERDUE_FACTOR times its
schedule ago: the broker, beat or the workers are stuck, and jobs pile up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.signals import task_postrun, task_prerun
from django.utils import timezone

from massmail.models import JobRun
from massmail.schedule import interval_of

SEND_TICK = "massmail.tasks.send_mass_emails"
BOUNCE_POLLER = "bounces.poll_bounces"
WATCHED = {SEND_TICK: "send tick", BOUNCE_POLLER: "bounce poller"}
OVERDUE_FACTOR = 2


def job_started(task: str) -> None:
    JobRun.objects.update_or_create(
        task=task, defaults={"started_at": timezone.now(), "finished_at": None}
    )


def job_finished(task: str) -> None:
    JobRun.objects.filter(task=task).update(finished_at=timezone.now())


@contextmanager
def recorded_run(task: str) -> Iterator[None]:
    """For runs outside Celery (the management command cron runs)."""
    job_started(task)
    try:
        yield
    finally:
        job_finished(task)


@task_prerun.connect(dispatch_uid="massmail.jobs.prerun")
def _on_task_prerun(sender=None, **kwargs) -> None:
    if getattr(sender, "name", None) in WATCHED:
        job_started(sender.name)


@task_postrun.connect(dispatch_uid="massmail.jobs.postrun")
def _on_task_postrun(sender=None, **kwargs) -> None:
    if getattr(sender, "name", None) in WATCHED:
        job_finished(sender.name)


@dataclass(frozen=True)
class JobStatus:
    task: str
    label: str
    every: timedelta | None  # None: no enabled schedule
    started_at: datetime | None
    finished_at: datetime | None
    overdue: bool

    @property
    def every_text(self) -> str:
        return _minutes(self.every) if self.every else "never"

    @property
    def message(self) -> str:
        if self.every is None:
            return f"The {self.label} has no enabled schedule (Scheduled jobs): it never runs."
        every = _minutes(self.every)
        if self.started_at is None:
            return (
                f"The {self.label} has not run yet (scheduled every {every}): "
                "are Celery beat and a worker running?"
            )
        return (
            f"The {self.label} last ran at {timezone.localtime(self.started_at):%Y-%m-%d %H:%M}, "
            f"more than {OVERDUE_FACTOR} x its schedule (every {every}) ago: the broker, beat "
            "or the workers are stuck and jobs are piling up."
        )


def _minutes(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    if seconds % 60:
        return f"{seconds} s"
    return "1 minute" if seconds == 60 else f"{seconds // 60} minutes"


def job_statuses(now: datetime | None = None) -> list[JobStatus]:
    now = now or timezone.now()
    runs = {run.task: run for run in JobRun.objects.filter(task__in=WATCHED)}
    statuses = []
    for task, label in WATCHED.items():
        every = interval_of(task)
        run = runs.get(task)
        started = run.started_at if run else None
        overdue = every is None or started is None or now - started > OVERDUE_FACTOR * every
        statuses.append(
            JobStatus(task, label, every, started, run.finished_at if run else None, overdue)
        )
    return statuses


def overdue_jobs(now: datetime | None = None) -> list[JobStatus]:
    return [status for status in job_statuses(now) if status.overdue]
