"""The mass email page: its progress (counts by status, when the next portion goes), the
panels (progress bar, last errors, pre-send checks) and the Preview page. The panels
are a mixin for MassEmailAdmin; checks and previews are done by massmail.presend and
massmail.preview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from massmail.jobs import job_statuses
from massmail.models import MassEmail, OutboundSettings, QueueItem, SenderLease, SendingPause
from massmail.placeholders import CompositionError
from massmail.presend import presend_warnings
from massmail.preview import candidates, key_for_address, preview
from massmail.queue import recipient_count
from massmail.schedule import next_tick_at
from massmail.sending import (
    CAP_WINDOW,
    domain_budgets,
    domain_pauses,
    recipient_domain,
    tick_allowance,
    tick_interval_minutes,
    unleased_stale_after,
    used_in_window,
)
from massmail.transport import server_key

LAST_ERRORS = 10
Status = QueueItem.Status


# Claims made without a lease (a Send Test's, older code's) this much older belong to a
# worker that died (or froze); they are freed `unleased_stale_after()` after the claim.
SILENT_AFTER = timedelta(minutes=3)


@dataclass(frozen=True)
class SilentClaims:
    count: int
    since: datetime  # the oldest claim
    freed_at: datetime


def silent_claims(mass_email: MassEmail, now: datetime) -> SilentClaims | None:
    """Claims of a dead worker: its lease ran out (freed by the next tick), or it had
    none and the claims are old."""
    sending = mass_email.queue_items.filter(status=Status.SENDING)
    expired = SenderLease.objects.filter(expires_at__lte=now).values("holder")
    dead = sending.filter(claimed_by__in=expired).aggregate(
        n=models.Count("id"), oldest=models.Min("claimed_at")
    )
    unleased = (
        sending.exclude(claimed_by__in=SenderLease.objects.values("holder"))
        .filter(claimed_at__lt=now - SILENT_AFTER)
        .aggregate(n=models.Count("id"), oldest=models.Min("claimed_at"))
    )
    count = dead["n"] + unleased["n"]
    if not count:
        return None
    oldest = min(t for t in (dead["oldest"], unleased["oldest"]) if t is not None)
    if dead["n"]:
        freed_at = next_tick_at(now) or now
    else:
        freed_at = unleased["oldest"] + unleased_stale_after()
    return SilentClaims(count, oldest, freed_at)


@dataclass
class Progress:
    total: int
    sent: int
    failed: int
    pending: int
    sending: int
    unknown: int
    canceled: int
    next_portion_at: datetime | None
    finish_at: datetime | None = None  # estimated, from the hourly cap and the queue
    silent: SilentClaims | None = None  # "sending now" items nobody is sending

    @property
    def percent_done(self) -> int:
        done = self.sent + self.failed + self.canceled
        return round(100 * done / self.total) if self.total else 0


def progress_of(mass_email: MassEmail, now: datetime | None = None) -> Progress:
    """What the mass email page shows: counts by status and when the next portion goes."""
    now = now or timezone.now()
    counts = dict(
        mass_email.queue_items.filter(is_test=False)
        .values_list("status")
        .annotate(n=models.Count("id"))
        .values_list("status", "n")
    )
    waiting = counts.get(Status.PENDING, 0) and mass_email.status == MassEmail.Status.IN_PROCESS
    progress = Progress(
        total=sum(counts.values()),
        sent=counts.get(Status.SENT, 0),
        failed=counts.get(Status.FAILED, 0),
        pending=counts.get(Status.PENDING, 0),
        sending=counts.get(Status.SENDING, 0),
        unknown=counts.get(Status.UNKNOWN, 0),
        canceled=counts.get(Status.CANCELED, 0),
        next_portion_at=next_portion_at(now) if waiting else None,
    )
    if progress.sending:
        progress.silent = silent_claims(mass_email, now)
    if progress.next_portion_at is not None:
        progress.finish_at = estimated_finish(
            progress.pending + progress.sending, progress.next_portion_at
        )
    return progress


def estimated_finish(remaining: int, first_portion_at: datetime) -> datetime:
    """About when the last of `remaining` messages goes, if this mass email has the cap to
    itself: a portion at each tick (up to the per-tick allowance), at most the hourly cap
    per 60 minutes."""
    outbound = OutboundSettings.load()
    cap = outbound.max_per_hour
    per_tick = tick_allowance(outbound) or cap
    interval = timedelta(minutes=tick_interval_minutes())
    ticks_per_hour = max(1, CAP_WINDOW // interval)
    if per_tick * ticks_per_hour <= cap:
        # The per-tick allowance is the limit: one portion per tick.
        return first_portion_at + (-(-remaining // per_tick) - 1) * interval
    # The cap is the limit: a cap's worth per hour, the last one in portions.
    full_hours = -(-remaining // cap) - 1
    last = remaining - full_hours * cap
    return first_portion_at + full_hours * CAP_WINDOW + (-(-last // per_tick) - 1) * interval


def next_portion_at(now: datetime) -> datetime | None:
    """The next tick at which the hourly cap leaves room (None: no schedule enabled)."""
    tick_at = next_tick_at(now)
    if tick_at is None:
        return None
    outbound = OutboundSettings.load()
    if used_in_window(tick_at) < outbound.max_per_hour:
        return tick_at
    # Full: room comes back when the oldest message in the window leaves it.
    oldest = (
        QueueItem.objects.filter(sent_at__gte=now - CAP_WINDOW)
        .order_by("sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )
    if oldest is None:
        return tick_at
    room_at = oldest + CAP_WINDOW
    interval = timedelta(minutes=tick_interval_minutes())
    while tick_at < room_at:
        tick_at += interval
    return tick_at


def unsent_count(mass_email: MassEmail) -> int:
    """The messages a cancel now would leave unsent: its pending items, or everyone a
    queue build would queue when the queue does not exist yet."""
    if not mass_email.can_cancel():
        return 0
    if mass_email.queue_built_at is None:
        return recipient_count(mass_email)
    return mass_email.queue_items.filter(status=Status.PENDING, is_test=False).count()


@dataclass(frozen=True)
class Waiting:
    key: str  # "server", "domain-paused", "domain-ramping", "domain-capped", "retrying"
    label: str
    count: int


def why_waiting(mass_email: MassEmail, now: datetime | None = None) -> list[Waiting]:
    """Why pending items are not going out now, with how many each reason holds."""
    now = now or timezone.now()
    pending = mass_email.queue_items.filter(is_test=False, status=Status.PENDING)
    reasons = []
    key = server_key(mass_email)
    server = SendingPause.objects.filter(kind=SendingPause.Kind.SERVER, key=key).first()
    if server is not None:
        label = (
            f"Waiting for the SMTP server {key} (since {server.since:%Y-%m-%d %H:%M}):"
            f" {server.reason}. Nobody is charged an attempt."
        )
        reasons.append(Waiting("server", label, pending.count()))
    retrying = pending.filter(attempt_count__gt=0, next_attempt_at__gt=now).count()
    if retrying:
        label = "Retrying recipients: a temporary failure of their own, each with its backoff"
        reasons.append(Waiting("retrying", label, retrying))
    blocked = [domain for domain, room in domain_budgets(now).items() if room <= 0]
    if blocked:
        pauses = domain_pauses(now)
        counts = (
            pending.annotate(domain=recipient_domain())
            .filter(domain__in=blocked)
            .values("domain")
            .annotate(n=models.Count("id"))
            .values_list("domain", "n")
        )
        for domain, n in sorted(counts):
            pause = pauses.get(domain)
            if pause is not None and pause.paused:
                until = f"{pause.paused_until:%H:%M}"
                label = f"Deferred by domain: {domain} asked us to wait, until {until}"
                reasons.append(Waiting("domain-paused", label, n))
            elif pause is not None and pause.ramping:
                label = (
                    f"Ramping up: {domain} asked us to wait; until {pause.ramp_until:%H:%M}"
                    f" it gets one connection at a time and {pause.per_minute:,} a minute"
                    " (doubled every minute)"
                )
                reasons.append(Waiting("domain-ramping", label, n))
            else:
                label = f"Paused by throttling: {domain} has reached its cap for now"
                reasons.append(Waiting("domain-capped", label, n))
    return reasons


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    count: int
    percent: float


def progress_segments(progress: Progress) -> list[Segment]:
    """The progress bar: each status as a share of the queue (test items not counted)."""
    parts = [
        ("sent", "Sent", progress.sent),
        ("failed", "Failed", progress.failed),
        ("unknown", "Delivery unknown", progress.unknown),
        ("sending", "Sending now", progress.sending),
        ("pending", "Pending", progress.pending),
        ("canceled", "Canceled", progress.canceled),
    ]
    total = progress.total or 1
    return [Segment(key, label, n, round(100 * n / total, 2)) for key, label, n in parts]


def last_errors(mass_email: MassEmail, limit: int = LAST_ERRORS) -> list[QueueItem]:
    """The latest items that ended in an error (failed, or delivery unknown).

    Filtered by status, which the (mass email, status) index answers, rather than
    by last_error, which would walk a million-item queue when there are few errors.
    """
    return list(
        mass_email.queue_items.filter(
            is_test=False, status__in=[QueueItem.Status.FAILED, QueueItem.Status.UNKNOWN]
        )
        .select_related("email_address")
        .order_by("-pk")[:limit]
    )


class MassEmailDashboard:
    """Mixed into MassEmailAdmin (a ModelAdmin)."""

    def get_urls(self):
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="massmail_massemail_preview",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        mass_email = self.get_object(request, unquote(object_id))
        if mass_email is not None:
            extra_context = {**(extra_context or {}), **self.dashboard_context(mass_email)}
        return super().change_view(request, object_id, form_url, extra_context)

    def dashboard_context(self, mass_email: MassEmail) -> dict:
        progress = progress_of(mass_email)
        return {
            "progress": progress,
            "progress_segments": progress_segments(progress),
            "last_errors": last_errors(mass_email),
            "why_waiting": why_waiting(mass_email),
            "presend_warnings": presend_warnings(mass_email),
            "job_statuses": job_statuses(),
        }

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        mass_email = self.get_object(request, unquote(object_id))
        if mass_email is None:
            raise Http404("No such mass email.")
        if not self.has_view_permission(request, mass_email):
            raise PermissionDenied
        choices = candidates(mass_email)
        key, error = self._chosen_key(request, mass_email, choices)
        shown, problems = None, []
        if key:
            try:
                shown = preview(mass_email, key)
            except ValidationError as invalid:
                error = " ".join(invalid.messages)
            except CompositionError as broken:
                problems = broken.errors
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": mass_email,
            "title": f"Preview: {mass_email}",
            "choices": choices,
            "chosen": key,
            "address": request.GET.get("address", ""),
            "error": error,
            "problems": problems,
            "preview": shown,
            "presend_warnings": presend_warnings(mass_email),
        }
        return TemplateResponse(request, "admin/massmail/massemail/preview.html", context)

    @staticmethod
    def _chosen_key(request: HttpRequest, mass_email: MassEmail, choices) -> tuple[str, str]:
        address = request.GET.get("address", "").strip()
        if address:
            key = key_for_address(mass_email, address)
            if key is None:
                return "", f"{address} is neither queued nor in this mass email's target lists."
            return key, ""
        key = request.GET.get("recipient", "")
        if not key and choices:
            key = choices[0].key
        if not key:
            return "", "Nobody to preview yet: the target lists are empty."
        return key, ""
