"""The start page on the admin index: what is sending, what is scheduled, what just
finished, and what needs attention (pre-send warnings, overdue jobs, bounces to review,
deliveries unknown). Each figure comes from the code the mass email page uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from bounces.models import UnmatchedBounce
from massmail.dashboard import Progress, progress_of
from massmail.jobs import JobStatus, job_statuses
from massmail.models import MassEmail, QueueItem, SplitTest
from massmail.presend import WARNING, presend_warnings

SHOWN = 10  # mass emails per section
RECENT = timedelta(days=14)
Status = MassEmail.Status


@dataclass
class Row:
    mass_email: MassEmail
    progress: Progress
    warnings: list[str] = field(default_factory=list)


@dataclass
class Attention:
    message: str
    url: str = ""  # an admin URL name


@dataclass
class StartPage:
    running: list[Row]
    scheduled: list[Row]
    recent: list[Row]
    jobs: list[JobStatus]
    attention: list[Attention]


def _rows(queryset, *, with_warnings: bool = False) -> list[Row]:
    rows = []
    for mass_email in queryset.select_related("campaign", "email_template")[:SHOWN]:
        warnings = []
        if with_warnings:
            warnings = [w.message for w in presend_warnings(mass_email) if w.level == WARNING]
        rows.append(Row(mass_email, progress_of(mass_email), warnings))
    return rows


def start_page(now: datetime | None = None) -> StartPage:
    now = now or timezone.now()
    running = _rows(
        MassEmail.objects.filter(status__in=[Status.IN_PROCESS, Status.PAUSED, Status.TESTING])
        # A/B variants wait for their parent's start (shown among the scheduled).
        .exclude(split_variant__split_test__state=SplitTest.State.WAITING)
        .order_by("start_at"),
        with_warnings=True,
    )
    scheduled = _rows(
        MassEmail.objects.filter(status__in=[Status.PENDING, Status.DRAFT]).order_by("start_at"),
        with_warnings=True,
    )
    recent = _rows(
        MassEmail.objects.filter(
            status__in=[Status.COMPLETE, Status.FAILED, Status.CANCELED],
            start_at__gte=now - RECENT,
        ).order_by("-start_at")
    )
    jobs = job_statuses(now)
    return StartPage(running, scheduled, recent, jobs, _attention(running + scheduled, jobs))


def _attention(open_rows: list[Row], jobs: list[JobStatus]) -> list[Attention]:
    found = [Attention(job.message) for job in jobs if job.overdue]
    for row in open_rows:
        found += [Attention(f"{row.mass_email}: {warning}") for warning in row.warnings]
    to_review = UnmatchedBounce.objects.filter(reviewed=False).count()
    if to_review:
        found.append(
            Attention(
                f"{to_review} bounce(s) matched no message and wait for review.",
                "admin:bounces_unmatchedbounce_changelist",
            )
        )
    unknown = QueueItem.objects.filter(status=QueueItem.Status.UNKNOWN, is_test=False).count()
    if unknown:
        found.append(
            Attention(
                f"{unknown} message(s) were interrupted, delivery unknown: "
                "check and retry them (Queue items, action Retry).",
                "admin:massmail_queueitem_changelist",
            )
        )
    return found
