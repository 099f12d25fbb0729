"""The sending engine: claim portions within the caps, send, record, reconcile.

The database is the queue of record. A tick (Celery beat task, or
`manage.py send_mass_emails`) builds the queues that are due (massmail.queue), then
sends portions:

1. Lease. The tick's worker takes a lease (SenderLease: holder, expires_at on the
   database's clock, MASSMAIL_SENDER_LEASE_SECONDS) and renews it while it sends: with
   every committed batch of outcomes, and before a message when the last renewal is
   older than a third of the lease. A worker is alive while its lease runs, however
   slow its SMTP server.
2. Claim. Under one lock that every tick shares (`select_for_update` on the outbound
   settings row), the budget is the hourly cap minus the items sent in the last 60
   minutes, minus the items being sent right now, minus the items whose delivery became
   unknown in the last 60 minutes (they may have gone out). Receiving domains with a
   cap (DomainThrottle, per minute and per hour, counted the same way) get at most
   their remaining room; paused domains (SendingPause) get nothing. Up to the budget,
   pending items are claimed with `FOR UPDATE SKIP LOCKED`, set Sending with the claim
   time and the worker's name, and the claim is committed before any SMTP traffic.
   Counting Sending items is what keeps two ticks from spending the same budget. The
   claim's commit also renews the lease (a worker whose lease ran out claims nothing).
3. Send. One SMTP connection per portion. Each item is re-checked first (address now
   invalid or opted out, target deleted: Failed with the reason). No item goes to SMTP
   before a committed "offered" mark on the lease covers it, and every mark rides on a
   commit that happens anyway or overlaps sending: the claim's commit marks a portion's
   first SYNC_AHEAD + 1 items; when the server has accepted the first message, the
   writer thread's commit marks the rest of the first two batches; each batch's commit
   moves the mark MARK_AHEAD items past the batch (in the same statement). The worker
   waits for a commit when it gets to the mark (where it waited anyway), or moves the
   mark SYNC_AHEAD items itself (a slow server, the lease due for renewal).
   Outcomes are recorded by conditional UPDATEs (`status = sending AND claimed_by = me`)
   and the Sent log row is inserted with ON CONFLICT DO NOTHING, committed every
   `FLUSH_EVERY` messages by a thread of the worker while the next batch goes out.
4. Reply codes decide the item's fate (massmail.transport says whom a reply is about):
   - 2xx: Sent.
   - the server is unreachable, drops us, or refuses us whatever the recipient (4xx to
     MAIL FROM or at connect): nobody is charged an attempt; the item goes back to
     Pending, the mass email waits (its page says so) and the next tick tries again.
   - 421 or Gmail's 4.7.28 at RCPT or DATA: the recipient's domain is paused
     (MASSMAIL_DOMAIN_PAUSE_MINUTES) for every worker, the item goes back to Pending
     uncharged, the rest of the portion goes on; so does a domain that answered
     MASSMAIL_DOMAIN_FAILURES_IN_A_ROW temporary failures in a row. After the pause the
     domain ramps up for MASSMAIL_DOMAIN_RAMP_MINUTES: one worker's connection at a
     time, MASSMAIL_DOMAIN_RAMP_START messages a minute, doubled every minute.
   - any other 4xx at RCPT or DATA is the recipient's own: that item alone goes back to
     Pending with an attempt charged and an exponential backoff (`RETRY_BACKOFF` x
     2^(n-1)); at `max_attempts` it fails and is logged as a soft bounce, once.
   - 5.1.x for the recipient: Failed, and a hard bounce through bounces.effects.
   - other 5xx: Failed with the reply.

Reconciliation (crashes). A worker whose lease has run out is dead. Its Sending items
up to its offered mark (in (mass email, id) sending order) may have reached the server:
they become **Delivery unknown** ("interrupted, delivery unknown"), never resent
silently; the mass email page counts them and "Retry" puts chosen ones back to Pending.
At most MARK_AHEAD items of a dead worker are unknown, fewer when it died early in a
portion (SYNC_AHEAD + 1 if it never reached the server). Its items after the mark were
merely claimed, never offered: back to Pending, sent later. (Claims by a worker without
a lease, i.e. older code, are judged by age: MASSMAIL_UNLEASED_STALE_MINUTES, then the
first UNRECORDED_WINDOW in sending order become unknown.) A worker that was only frozen
finds its lease gone at its next renewal and stops; if it did send an item now marked
unknown, its late record makes the item Sent. A connection dropped after the whole
message went out but before the server answered leaves that one item unknown as well.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Lower, Now, StrIndex, Substr
from django.utils import timezone

from bounces.classify import Report, Verdict
from bounces.effects import apply_report
from bounces.reasons import reason_for
from campaigns.models import Campaign, CampaignLogRecord
from massmail.composition import PreparedMessage, prepare
from massmail.models import (
    DomainThrottle,
    MassEmail,
    OutboundSettings,
    QueueItem,
    SenderLease,
    SendingPause,
)
from massmail.queue import build_due_queues
from massmail.recipients import RecipientContext, recipient_contexts
from massmail.schedule import tick_interval
from massmail.sql import flatten, sql_placeholders
from massmail.transport import (
    Transport,
    TransportError,
    enhanced_status,
    server_key,
    transport_for,
)
from targets.models import EmailAddress

log = logging.getLogger(__name__)

RETRY_BACKOFF = timedelta(minutes=5)
CAP_WINDOW = timedelta(minutes=60)
MINUTE = timedelta(minutes=1)
SERVER_RETRY = timedelta(minutes=1)  # a server that is down is tried again after this
CLAIM_CHUNK = 1000  # items claimed at once; bounds a worker's memory, not the portion
FLUSH_EVERY = 25  # accepted messages per outcome commit
# How far ahead of a batch its commit moves the lease's "offered" mark: the worker may
# send that many items past the batch before it must see the next commit (two batches:
# it waits for a commit exactly where it did before there was a mark). At most this
# many items of a dead worker become Delivery unknown.
MARK_AHEAD = 2 * FLUSH_EVERY
# When the worker moves the mark itself (a portion's first items, a slow server), it
# moves it this far: a worker that dies before its first batch leaves few unknown.
SYNC_AHEAD = 5
# Claims of a worker without a lease (code from before leases, a Send Test's brief
# claim): the most a dead worker can have had in flight then, and when it is dead.
UNRECORDED_WINDOW = 2 * FLUSH_EVERY + 1
DEFAULT_TICK_MINUTES = 10
INTERRUPTED = "interrupted, delivery unknown"

Status = QueueItem.Status


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.MASSMAIL_SENDER_LEASE_SECONDS)


def unleased_stale_after() -> timedelta:
    return timedelta(minutes=settings.MASSMAIL_UNLEASED_STALE_MINUTES)


def _lease_end() -> ExpressionWrapper:
    # The database's clock: one clock for every worker host, whatever theirs say.
    return ExpressionWrapper(Now() + Value(lease_duration()), output_field=DateTimeField())


def take_lease(worker: str) -> None:
    SenderLease.objects.create(holder=worker, expires_at=_lease_end())


def renew_lease(worker: str, offered: QueueItem | None = None) -> bool:
    """Extend a lease that still runs (and move its offered mark); False when it ran out."""
    fields: dict[str, Any] = {"expires_at": _lease_end()}
    if offered is not None:
        fields.update(offered_mass_email_id=offered.mass_email_id, offered_item_id=offered.pk)
    live = SenderLease.objects.filter(holder=worker, expires_at__gt=Now())
    return live.update(**fields) == 1


def end_lease(worker: str) -> None:
    """A worker that is done: its lease runs out now (its rows go at the next reconcile)."""
    SenderLease.objects.filter(holder=worker).update(expires_at=Now())


# ---------------------------------------------------------------- claiming


@dataclass
class TickResult:
    built: list[int] = field(default_factory=list)
    reconciled: int = 0
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    unknown: int = 0
    stopped: str = ""  # why sending stopped early, if it did
    completed: int = 0


def tick(*, worker: str | None = None) -> TickResult:
    """One run of the scheduled job: reconcile, build due queues, send portions, complete."""
    worker = worker or worker_name()
    result = TickResult(reconciled=reconcile_stale(), built=build_due_queues())
    outbound = OutboundSettings.load()
    tick_limit = tick_allowance(outbound)
    session = SendingSession(worker, outbound)
    try:
        while tick_limit is None or result.claimed < tick_limit:
            room = CLAIM_CHUNK if tick_limit is None else tick_limit - result.claimed
            items = session.claim(min(room, CLAIM_CHUNK))
            if session.lease_lost:
                result.stopped = LEASE_LOST
                break
            if not items:
                break
            result.claimed += len(items)
            session.send(items, result)
            if session.lease_lost:
                break
    finally:
        session.close()
    result.completed = MassEmail.objects.complete_finished()
    return result


def tick_allowance(outbound: OutboundSettings) -> int | None:
    """What one tick may send at most besides the hourly cap (None: no further limit)."""
    limits = []
    if outbound.max_per_batch:
        limits.append(outbound.max_per_batch)
    if outbound.spread_over_hour:
        limits.append(max(1, outbound.max_per_hour * tick_interval_minutes() // 60))
    return min(limits) if limits else None


def tick_interval_minutes() -> int:
    interval = tick_interval()
    return max(1, int(interval.total_seconds() // 60)) if interval else DEFAULT_TICK_MINUTES


def used_in_window(now: datetime) -> int:
    """Items that count against the hourly cap right now (all mass emails, tests too).

    One statement, so one snapshot: as three queries, an outcome committed between
    them (Sending -> Sent with its sent_at) was counted by neither the Sent query
    before it nor the Sending query after it, and a concurrent claim took the
    items' share of the cap a second time.
    """
    since = now - CAP_WINDOW
    table = QueueItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT count(*) FROM {table} WHERE sent_at >= %s)"
            f" + (SELECT count(*) FROM {table} WHERE status = %s)"
            f" + (SELECT count(*) FROM {table} WHERE status = %s AND claimed_at >= %s)",
            [since, Status.SENDING, Status.UNKNOWN, since],
        )
        return cursor.fetchone()[0]


class LeaseLost(Exception):
    """The claiming worker's lease ran out: it must claim (and send) nothing more."""


def claim_portion(
    limit: int,
    *,
    worker: str,
    exclude: Iterable[int] = (),
    now: datetime | None = None,
    mark_ahead: int | None = None,
) -> list[QueueItem]:
    """Claim up to `limit` due items within the hourly cap and the caps and pauses of
    receiving domains; committed before returning.

    With `mark_ahead`, the same commit renews the worker's lease and moves its offered
    mark to `claim_mark(items, mark_ahead)` (no statement of its own); LeaseLost, and
    nothing claimed, when the lease has run out."""
    now = now or timezone.now()
    with transaction.atomic():
        outbound = OutboundSettings.objects.select_for_update().filter(pk=1).first()
        outbound = outbound or OutboundSettings.load()
        budget = min(limit, outbound.max_per_hour - used_in_window(now))
        if budget <= 0:
            return []
        domains = domain_budgets(now)
        active = MassEmail.objects.filter(status=MassEmail.Status.IN_PROCESS).exclude(
            pk__in=list(exclude)
        )
        ids: list[int] = []
        mark: QueueItem | None = None  # what the claim's commit marks offered
        # One mass email at a time: `mass_email_id = x ORDER BY id` walks the partial
        # index of pending items in order, where an IN list would sort all of them.
        for mass_email_id in active.order_by("pk").values_list("pk", flat=True):
            taken = _due_pending(mass_email_id, now, budget - len(ids), domains)
            if taken and mark_ahead is not None and not ids:
                mark_id = sorted(taken)[min(mark_ahead, len(taken) - 1)]
                mark = QueueItem(pk=mark_id, mass_email_id=mass_email_id)
            ids += taken
            if len(ids) >= budget:
                break
        if not ids:
            return []
        QueueItem.objects.filter(pk__in=ids).update(
            status=Status.SENDING, claimed_at=now, claimed_by=worker
        )
        if mark is not None and not renew_lease(worker, offered=mark):
            transaction.set_rollback(True)  # a frozen worker's claim is no claim
            raise LeaseLost(worker)
    return claimed_items(ids)


def claim_mark(items: list[QueueItem], ahead: int) -> QueueItem:
    """The item a claim's commit marks offered: `ahead` items into the first mass email
    of the claim, in sending order (claimed_items' order)."""
    first = [item for item in items if item.mass_email_id == items[0].mass_email_id]
    return first[min(ahead, len(first) - 1)]


def recipient_domain(address: str = "email_address__address") -> Lower:
    """The part after @ of a queue item's address, in SQL (both vendors)."""
    return Lower(Substr(F(address), StrIndex(F(address), Value("@")) + 1))


def domain_of(item: QueueItem) -> str:
    return item.email_address.address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class DomainPause:
    """A receiving domain's pause as claims see it at `now`."""

    paused_until: datetime
    ramp_until: datetime | None
    now: datetime

    @property
    def paused(self) -> bool:
        return self.paused_until > self.now

    @property
    def ramping(self) -> bool:
        return not self.paused and self.ramp_until is not None and self.ramp_until > self.now

    @property
    def per_minute(self) -> int:
        """The ramp's rate now: MASSMAIL_DOMAIN_RAMP_START a minute, doubled each minute
        since the pause ended."""
        minutes = int((self.now - self.paused_until) / MINUTE)
        return settings.MASSMAIL_DOMAIN_RAMP_START * 2 ** min(minutes, 20)


def domain_pauses(now: datetime) -> dict[str, DomainPause]:
    """Receiving domains paused, or ramping up after a pause, at `now`."""
    rows = SendingPause.objects.filter(kind=SendingPause.Kind.DOMAIN).filter(
        Q(paused_until__gt=now) | Q(ramp_until__gt=now)
    )
    return {
        key: DomainPause(paused_until, ramp_until, now)
        for key, paused_until, ramp_until in rows.values_list("key", "paused_until", "ramp_until")
    }


def domain_budgets(now: datetime) -> dict[str, int]:
    """{domain: items it may still take now} for paused (0), ramping and capped receiving
    domains. A ramping domain takes nothing while any worker is sending to it (one
    connection at a time), else what its ramp rate leaves of the last minute."""
    pauses = domain_pauses(now)
    budgets = {domain: 0 for domain, pause in pauses.items() if pause.paused}
    ramping = {domain: pause for domain, pause in pauses.items() if pause.ramping}
    throttles = [t for t in DomainThrottle.objects.all() if t.domain not in budgets]
    used = domain_use(now, sorted({t.domain for t in throttles} | set(ramping)))
    for throttle in throttles:
        in_hour, in_minute, _ = used.get(throttle.domain, (0, 0, 0))
        rooms = []
        if throttle.per_hour:
            rooms.append(throttle.per_hour - in_hour)
        if throttle.per_minute:
            rooms.append(throttle.per_minute - in_minute)
        if rooms:
            budgets[throttle.domain] = max(0, min(rooms))
    for domain, pause in ramping.items():
        _, in_minute, sending = used.get(domain, (0, 0, 0))
        room = 0 if sending else max(0, pause.per_minute - in_minute)
        budgets[domain] = min(budgets.get(domain, room), room)
    return budgets


def domain_use(now: datetime, domains: list[str]) -> dict[str, tuple[int, int, int]]:
    """{domain: (used in the last hour, in the last minute, being sent now)}, counted as
    the hourly cap is (sent in the window, being sent, unknown since claimed in it); one
    statement."""
    if not domains:
        return {}

    def counted(since: datetime) -> Q:
        return (
            Q(sent_at__gte=since)
            | Q(status=Status.SENDING)
            | Q(status=Status.UNKNOWN, claimed_at__gte=since)
        )

    rows = (
        QueueItem.objects.annotate(domain=recipient_domain())
        .filter(counted(now - CAP_WINDOW), domain__in=domains)
        .values("domain")
        .annotate(
            hour=Count("id"),
            minute=Count("id", filter=counted(now - MINUTE)),
            sending=Count("id", filter=Q(status=Status.SENDING)),
        )
        .values_list("domain", "hour", "minute", "sending")
    )
    return {domain: (hour, minute, sending) for domain, hour, minute, sending in rows}


def _due_pending(mass_email_id: int, now: datetime, limit: int, domains: dict[str, int]):
    """Due pending item ids of one mass email, locked; domains' budgets are spent."""
    due = QueueItem.objects.filter(
        status=Status.PENDING, is_test=False, mass_email_id=mass_email_id
    ).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    if not domains:
        return _locked_ids(due, limit)
    by_domain = due.annotate(domain=recipient_domain())
    ids = _locked_ids(by_domain.exclude(domain__in=list(domains)), limit)
    for domain, room in domains.items():
        take = min(room, limit - len(ids))
        if take > 0:
            taken = _locked_ids(by_domain.filter(domain=domain), take)
            domains[domain] -= len(taken)
            ids += taken
    return ids


def _locked_ids(items, limit: int) -> list[int]:
    return list(
        items.order_by("id")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("id", flat=True)[:limit]
    )


# What sending and composition read of a claimed item: loading only these halves the
# cost of a claim (no per-row parsing of dates and texts nobody reads).
_SENDING_FIELDS = (
    "id",
    "uid",
    "mass_email_id",
    "content_type_id",
    "object_id",
    "status",
    "attempt_count",
    "is_test",
    "claimed_by",
    "email_address__address",
    "email_address__opt_out",
    "email_address__invalid",
)


def claimed_items(ids: list[int]) -> list[QueueItem]:
    """The items with their addresses; each mass email (and its template) loaded once."""
    items = list(
        QueueItem.objects.filter(pk__in=ids)
        .select_related("email_address")
        .only(*_SENDING_FIELDS)
        .order_by("mass_email_id", "id")  # the sending order reconcile_stale relies on
    )
    mass_emails = MassEmail.objects.select_related(
        "campaign", "email_template", "group_email_account"
    ).in_bulk({item.mass_email_id for item in items})
    for item in items:
        item.mass_email = mass_emails[item.mass_email_id]
    return items


def reconcile_stale(now: datetime | None = None) -> int:
    """Claims of dead workers: unknown if they may have been offered, else Pending.

    A worker is dead when its lease has run out. Before it hands an item to SMTP, a
    committed "offered" mark on its lease covers that item (moved at most MARK_AHEAD
    items ahead), so only the items up to the mark may have reached the server; the
    items after it, merely claimed, go back to Pending. Returns the items made unknown.
    """
    reconciled = 0
    with transaction.atomic():
        expired = SenderLease.objects.filter(expires_at__lt=Now()).select_for_update(
            skip_locked=True
        )
        leases = list(expired)
        for lease in leases:
            reconciled += _reconcile_claims(lease)
        SenderLease.objects.filter(pk__in=[lease.pk for lease in leases]).delete()
    return reconciled + _reconcile_unleased(now or timezone.now())


def _reconcile_claims(lease: SenderLease) -> int:
    claims = QueueItem.objects.filter(status=Status.SENDING, claimed_by=lease.holder)
    unknown = 0
    if lease.offered_item_id is not None:
        offered = Q(mass_email_id__lt=lease.offered_mass_email_id) | Q(
            mass_email_id=lease.offered_mass_email_id, id__lte=lease.offered_item_id
        )
        unknown = claims.filter(offered).update(status=Status.UNKNOWN, last_error=INTERRUPTED)
    claims.update(status=Status.PENDING, claimed_by="", claimed_at=None)
    return unknown


def _reconcile_unleased(now: datetime) -> int:
    """Claims made without a lease, by age: the first UNRECORDED_WINDOW in sending order
    may have reached the server, the rest was never offered."""
    holders = SenderLease.objects.values("holder")
    stale = QueueItem.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - unleased_stale_after()
    ).exclude(claimed_by__in=holders)
    reconciled = 0
    for worker in stale.values_list("claimed_by", flat=True).distinct().order_by():
        ids = list(
            stale.filter(claimed_by=worker)
            .order_by("mass_email_id", "id")
            .values_list("id", flat=True)
        )
        maybe_sent, never_offered = ids[:UNRECORDED_WINDOW], ids[UNRECORDED_WINDOW:]
        with transaction.atomic():
            reconciled += stale.filter(pk__in=maybe_sent).update(
                status=Status.UNKNOWN, last_error=INTERRUPTED
            )
            stale.filter(pk__in=never_offered).update(
                status=Status.PENDING, claimed_by="", claimed_at=None
            )
    return reconciled


# ---------------------------------------------------------------- sending


class SendingSession:
    """A tick's sending state: its lease, prepared messages and open transports, reused
    across portions, and the receiving domains paused while it runs."""

    def __init__(self, worker: str, outbound: OutboundSettings, *, is_test: bool = False) -> None:
        self.worker = worker
        self.outbound = outbound
        self.is_test = is_test
        self.prepared: dict[int, PreparedMessage] = {}
        self.transports: dict[int, Transport] = {}
        self.blocked_mass_emails: set[int] = set()
        self.paused_domains: set[str] = set()
        self.servers_seen_up: set[str] = set()
        take_lease(worker)
        self.last_renewal = time.monotonic()
        self.renew_every = lease_duration().total_seconds() / 3
        self.lease_lost = False  # then it must claim nothing more
        self.claim_marked: QueueItem | None = None  # what the last claim's commit marked
        self.writer = OutcomeWriter(worker) if OutcomeWriter.usable() else None

    def claim(self, limit: int) -> list[QueueItem]:
        """claim_portion, its commit renewing the lease and marking the first SYNC_AHEAD
        items offered: a portion starts sending without a statement of its own."""
        started = time.monotonic()
        try:
            items = claim_portion(
                limit,
                worker=self.worker,
                exclude=self.blocked_mass_emails,
                mark_ahead=SYNC_AHEAD,
            )
        except LeaseLost:
            self.lease_lost = True
            return []
        if items:
            self.claim_marked = claim_mark(items, SYNC_AHEAD)
            self.last_renewal = started
        return items

    def send(self, items: list[QueueItem], result: TickResult) -> None:
        """Send claimed items (grouped per mass email) and record every outcome."""
        for mass_email_id, group in _by_mass_email(items).items():
            if self.lease_lost or mass_email_id in self.blocked_mass_emails:
                release(group, worker=self.worker)
                continue
            PortionRun(self, group, result).run()

    def prepared_for(self, mass_email: MassEmail) -> PreparedMessage:
        if mass_email.pk not in self.prepared:
            self.prepared[mass_email.pk] = prepare(
                mass_email, outbound=self.outbound, is_test=self.is_test
            )
        return self.prepared[mass_email.pk]

    def transport_for(self, mass_email: MassEmail) -> Transport:
        if mass_email.pk not in self.transports:
            self.transports[mass_email.pk] = transport_for(mass_email)
        return self.transports[mass_email.pk]

    def renewal_due(self) -> bool:
        return time.monotonic() - self.last_renewal >= self.renew_every

    def pause_domain(self, domain: str, reason: str) -> None:
        """Nothing more to `domain` for a while, from any worker (a 421 or 4.7.28); then
        one connection at a time and a growing rate (Gmail's advice after a 4.7.28)."""
        self.paused_domains.add(domain)
        pause = timedelta(minutes=settings.MASSMAIL_DOMAIN_PAUSE_MINUTES)
        ramp = timedelta(minutes=settings.MASSMAIL_DOMAIN_RAMP_MINUTES)
        _pause(SendingPause.Kind.DOMAIN, domain, pause, reason, ramp=ramp)

    def wait_for_server(self, mass_email: MassEmail, reason: str) -> None:
        """The server is down or refuses us: recorded for the mass email page."""
        key = server_key(mass_email)
        self.servers_seen_up.discard(key)
        _pause(SendingPause.Kind.SERVER, key, SERVER_RETRY, reason)

    def server_is_up(self, mass_email: MassEmail) -> None:
        key = server_key(mass_email)
        if key not in self.servers_seen_up:
            self.servers_seen_up.add(key)
            SendingPause.objects.filter(kind=SendingPause.Kind.SERVER, key=key).delete()

    def close(self) -> None:
        try:
            for transport in self.transports.values():
                transport.close()
            self.transports.clear()
            if self.writer is not None:
                self.writer.close()
        finally:
            end_lease(self.worker)


def _pause(
    kind: str, key: str, duration: timedelta, reason: str, *, ramp: timedelta | None = None
) -> None:
    now = timezone.now()
    ramp_until = now + duration + ramp if ramp else None
    pause, created = SendingPause.objects.get_or_create(
        kind=kind,
        key=key,
        defaults={
            "paused_until": now + duration,
            "ramp_until": ramp_until,
            "since": now,
            "reason": reason,
        },
    )
    if not created:
        if pause.paused_until <= now:
            pause.since = now  # a new pause, not the old one going on
        pause.paused_until, pause.ramp_until, pause.reason = now + duration, ramp_until, reason
        pause.save(update_fields=["paused_until", "ramp_until", "since", "reason"])


class OutcomeWriter:
    """Commits batches of Sent outcomes on a thread of its own, so that waiting for a
    commit overlaps sending the next batch. One batch in flight at most. A batch's
    commit also renews the lease and moves its offered mark (`offered`)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcomes")
        self.in_flight: Future | None = None
        self.in_flight_mark: int | None = None
        self.in_flight_at = 0.0
        self.covered: int | None = None  # the position the last committed mark covers
        self.renewed_at = 0.0
        self.lease_lost = False

    @staticmethod
    def usable() -> bool:
        # Its own connection must see the claims: not inside a caller's transaction
        # (tests wrapped in one), and not on SQLite, whose writers queue up anyway.
        return connection.vendor == "postgresql" and not connection.in_atomic_block

    def submit(
        self,
        batch: list[tuple[QueueItem, str, datetime]],
        mark: tuple[int, QueueItem] | None = None,
    ) -> int:
        """Hand over a batch once the previous one is committed; that one's count."""
        recorded = self.wait()
        offered = mark[1] if mark else None
        self.in_flight = self.executor.submit(
            record_sent_and_mark, batch, worker=self.worker, offered=offered
        )
        self.in_flight_mark = mark[0] if mark else None
        self.in_flight_at = time.monotonic()  # the lease is renewed no earlier than this
        return recorded

    def wait(self) -> int:
        """Block until the batch in flight is committed; how many it marked Sent."""
        future, self.in_flight = self.in_flight, None
        if future is None:
            return 0
        recorded, marked = future.result()
        if self.in_flight_mark is not None:
            if marked:
                self.covered, self.renewed_at = self.in_flight_mark, self.in_flight_at
            else:
                self.lease_lost = True
        return recorded

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.executor.submit(_close_thread_connection).result()
            self.executor.shutdown()


def _close_thread_connection() -> None:
    connection.close()  # the calling thread's own connection (Django keeps one per thread)


def _by_mass_email(items: list[QueueItem]) -> dict[int, list[QueueItem]]:
    groups: dict[int, list[QueueItem]] = {}
    for item in items:
        groups.setdefault(item.mass_email_id, []).append(item)
    return groups


LEASE_LOST = "this worker's lease ran out while it was stalled: its claims were taken back"


class PortionRun:
    """One mass email's claimed items, sent in order over the session's transport.

    Nothing is handed to SMTP unless a committed offered mark on the lease covers it
    (`_may_offer`): that is what lets reconciliation send a dead worker's merely
    claimed items back to Pending instead of calling them unknown."""

    def __init__(self, session: SendingSession, items: list[QueueItem], result: TickResult):
        self.session = session
        self.items = items
        self.result = result
        self.mass_email = items[0].mass_email
        self.done: list[tuple[QueueItem, str, datetime]] = []
        self.sendable: list[QueueItem] = []
        self.covered = -1  # position in `sendable` the committed offered mark covers
        self.failures_in_a_row: dict[str, int] = {}
        self.held_back: set[int] = set()  # items of paused domains, released already
        self.reached_server = False  # a message of this portion was accepted
        if session.writer is not None:
            session.writer.covered = None  # positions are this portion's

    def run(self) -> None:
        try:
            self._run()
        finally:
            self._flush()  # nothing in flight leaves a portion (its marks are positions)

    def _run(self) -> None:
        contexts = recipient_contexts(self.items)
        self.sendable = sendable = self._recheck(self.items, contexts)
        if not sendable:
            return
        self.covered = self._covered_by_claim()
        try:
            prepared = self.session.prepared_for(self.mass_email)
            transport = self.session.transport_for(self.mass_email)
        except Exception as error:
            # A broken template or transport settings: nothing of this mass email can go.
            log.exception("cannot prepare mass email %s", self.mass_email.pk)
            self._fail_all(sendable, f"cannot prepare the message: {error}")
            return
        paused = self.session.paused_domains
        self._hold_back_paused(sendable)
        for position, item in enumerate(sendable):
            if not self._may_offer(position):
                self._flush()
                self.session.lease_lost = True
                self.result.stopped = LEASE_LOST
                release(sendable[position:], worker=self.session.worker)
                return
            if item.pk in self.held_back:
                continue
            paused_before = len(paused)
            if not self._send_one(position, prepared, transport, contexts.get(item.id)):
                self._flush()
                self._stop(sendable[position + 1 :])
                return
            if len(paused) > paused_before:
                self._hold_back_paused(sendable[position + 1 :])
            if len(self.done) >= FLUSH_EVERY:
                self._flush(background=True, position=position)
                if self._stopped_by_user(sendable[position + 1 :]):
                    return

    def _hold_back_paused(self, rest: list[QueueItem]) -> None:
        """The items of `rest` whose domain is paused go back to Pending now, in one
        statement (not one statement each as the loop reaches them)."""
        paused = self.session.paused_domains
        if not paused:
            return
        held = [i for i in rest if i.pk not in self.held_back and domain_of(i) in paused]
        if held:
            release(held, worker=self.session.worker)
            self.held_back.update(item.pk for item in held)

    def _covered_by_claim(self) -> int:
        """The position in `sendable` that the claim's own commit marked offered."""
        mark, self.session.claim_marked = self.session.claim_marked, None
        if mark is None or mark.mass_email_id != self.mass_email.pk:
            return -1
        return sum(1 for item in self.sendable if item.pk <= mark.pk) - 1

    def _first_accepted(self, position: int) -> None:
        """The server took this portion's first message: the rest of its first two
        batches is marked offered in a commit of the writer's, while sending goes on (a
        worker that never reached the server left only the claim's few marked)."""
        self.reached_server = True
        if self.session.is_test:
            return
        self.session.server_is_up(self.mass_email)
        writer = self.session.writer
        target = min(position + MARK_AHEAD - 1, len(self.sendable) - 1)
        if writer is not None and writer.in_flight is None and target > self.covered:
            writer.submit([], (target, self.sendable[target]))

    def _may_offer(self, position: int) -> bool:
        """May sendable[position] go to SMTP? Only under a committed mark and a live lease."""
        session = self.session
        writer = session.writer
        if writer is not None and writer.covered is not None:
            self.covered = max(self.covered, writer.covered)
            session.last_renewal = max(session.last_renewal, writer.renewed_at)
        if position <= self.covered and not session.renewal_due():
            return True
        if writer is not None and writer.in_flight is not None:
            self.result.sent += writer.wait()
            return not writer.lease_lost and self._may_offer(position)
        if writer is not None and writer.lease_lost:
            return False
        target = min(max(self.covered, position + SYNC_AHEAD), len(self.sendable) - 1)
        if not renew_lease(session.worker, offered=self.sendable[target]):
            return False
        self.covered, session.last_renewal = target, time.monotonic()
        return True

    def _send_one(
        self,
        position: int,
        prepared: PreparedMessage,
        transport: Transport,
        context: RecipientContext | None,
    ) -> bool:
        """Send sendable[position] and note its outcome; False when the portion must stop."""
        item = self.sendable[position]
        try:
            rendered = prepared.render(item, context)
        except Exception as error:
            log.exception("cannot compose queue item %s", item.pk)
            self._flush()
            self._fail(item, f"cannot compose the message: {error}")
            return True
        try:
            transport.send(rendered, prepared=prepared, item=item, context=context)
        except TransportError as error:
            self._flush()
            return self._handle_error(item, error)
        self.done.append((item, rendered.message_id, timezone.now()))
        if self.failures_in_a_row:
            self.failures_in_a_row.pop(domain_of(item), None)
        if not self.reached_server:
            self._first_accepted(position)
        return True

    def _handle_error(self, item: QueueItem, error: TransportError) -> bool:
        session = self.session
        worker = session.worker
        if session.is_test and not error.uncertain:
            # A test is sent now or never: no retries, no waiting for the next tick.
            self._fail(item, error.message)
            return not (error.connection_lost or error.server_wide)
        if error.uncertain:
            _set_outcome(item, worker, status=Status.UNKNOWN, last_error=error.message)
            self.result.unknown += 1
        elif error.server_wide:
            # Nobody's fault but the server's: nobody is charged, the mass email waits.
            release([item], worker=worker, last_error=f"waiting for the server: {error.message}")
            session.wait_for_server(self.mass_email, error.message)
            session.blocked_mass_emails.add(self.mass_email.pk)
            self.result.stopped = error.message
            return False
        elif error.domain_throttled:
            release([item], worker=worker, last_error=f"throttled: {error.message}")
            session.pause_domain(domain_of(item), error.message)
            return True  # a 421's closed connection is opened again for the next domain
        elif error.permanent:
            self._fail(item, error.message)
            if error.recipient_unknown:
                record_hard_bounce(item, error.message)
        else:
            self._defer(item, error.message)
        if error.connection_lost:
            session.blocked_mass_emails.add(self.mass_email.pk)
            self.result.stopped = error.message
            return False
        return True

    def _stop(self, rest: list[QueueItem]) -> None:
        """The portion stops: the rest was never offered to the server."""
        if self.session.is_test:
            self._fail_all(rest, f"not sent: {self.result.stopped}")
        else:
            release(rest, worker=self.session.worker)

    def _defer(self, item: QueueItem, message: str) -> None:
        """The recipient's own temporary failure: this item waits, charged an attempt;
        many in a row from one domain pause that domain."""
        attempts = item.attempt_count + 1
        if attempts >= self.session.outbound.max_attempts:
            self._fail(item, message, attempt_count=attempts)
            record_soft_bounce(item, message)
        else:
            _set_outcome(
                item,
                self.session.worker,
                status=Status.PENDING,
                attempt_count=attempts,
                last_error=message,
                next_attempt_at=timezone.now() + RETRY_BACKOFF * 2 ** (attempts - 1),
                claimed_by="",
            )
            self.result.retrying += 1
        domain = domain_of(item)
        in_a_row = self.failures_in_a_row.get(domain, 0) + 1
        self.failures_in_a_row[domain] = in_a_row
        if in_a_row >= settings.MASSMAIL_DOMAIN_FAILURES_IN_A_ROW:
            self.session.pause_domain(domain, f"{in_a_row} temporary failures in a row: {message}")

    def _fail(self, item: QueueItem, reason: str, **fields: Any) -> None:
        _set_outcome(item, self.session.worker, status=Status.FAILED, last_error=reason, **fields)
        self.result.failed += 1

    def _fail_all(self, items: list[QueueItem], reason: str) -> None:
        QueueItem.objects.filter(pk__in=[item.pk for item in items], status=Status.SENDING).update(
            status=Status.FAILED, last_error=reason
        )
        self.result.failed += len(items)

    def _recheck(
        self, items: list[QueueItem], contexts: dict[int, RecipientContext]
    ) -> list[QueueItem]:
        """Fail items whose address or target changed since the queue was built."""
        reasons = send_time_problems(items, contexts, self.mass_email.campaign)
        for item in items:
            if item.pk in reasons:
                self._fail(item, reasons[item.pk])
        return [item for item in items if item.pk not in reasons]

    def _flush(self, *, background: bool = False, position: int = 0) -> None:
        """Record the accepted messages; with `background`, while the next ones go out
        (and that commit moves the offered mark MARK_AHEAD past `position`)."""
        batch, self.done = self.done, []
        writer = self.session.writer
        if writer is None:
            self.result.sent += record_sent(batch, worker=self.session.worker)
            return
        if batch:
            mark = None
            if background:
                target = min(position + MARK_AHEAD, len(self.sendable) - 1)
                mark = (target, self.sendable[target])
            self.result.sent += writer.submit(batch, mark)
        if not background:
            self.result.sent += writer.wait()

    def _stopped_by_user(self, rest: list[QueueItem]) -> bool:
        """Paused or canceled while sending: the rest goes back (or is canceled)."""
        if self.session.is_test:
            return False
        status = MassEmail.objects.filter(pk=self.mass_email.pk).values_list("status", flat=True)
        status = status.first()
        if status in (MassEmail.Status.IN_PROCESS, MassEmail.Status.COMPLETE):
            return False
        if status == MassEmail.Status.CANCELED:
            _ids(rest).filter(status=Status.SENDING).update(status=Status.CANCELED)
        else:
            release(rest, worker=self.session.worker)
        self.session.blocked_mass_emails.add(self.mass_email.pk)
        return True


def send_time_problems(
    items: list[QueueItem], contexts: dict[int, RecipientContext], campaign: Campaign
) -> dict[int, str]:
    """{item id: why it must not go} for invalid/opted-out addresses and deleted targets."""
    reasons: dict[int, str] = {}
    for item in items:
        address = item.email_address
        context = contexts.get(item.pk)
        if address.invalid:
            reasons[item.pk] = "address is invalid"
        elif address.opt_out and not campaign.is_informational:
            reasons[item.pk] = "address opted out"
        elif item.content_type_id and (context is None or context.target is None):
            reasons[item.pk] = "target deleted"
    return reasons


def _ids(items: Iterable[QueueItem]):
    return QueueItem.objects.filter(pk__in=[item.pk for item in items])


def _set_outcome(item: QueueItem, worker: str, **fields: Any) -> int:
    """A conditional UPDATE: only this worker's claim (possibly reconciled meanwhile)."""
    return (
        QueueItem.objects.filter(
            pk=item.pk, status__in=[Status.SENDING, Status.UNKNOWN], claimed_by=worker
        )
        .filter(Q(status=Status.SENDING) | Q(last_error=INTERRUPTED))
        .update(**fields)
    )


def release(items: Iterable[QueueItem], *, worker: str, last_error: str | None = None) -> int:
    """Claimed items that were not offered to the server go back to Pending unchanged."""
    fields: dict[str, Any] = {"status": Status.PENDING, "claimed_by": "", "claimed_at": None}
    if last_error is not None:
        fields["last_error"] = last_error
    return _ids(items).filter(status=Status.SENDING, claimed_by=worker).update(**fields)


def record_sent(done: list[tuple[QueueItem, str, datetime]], *, worker: str) -> int:
    """Mark accepted messages Sent and log them, atomically; how many were marked."""
    return record_sent_and_mark(done, worker=worker)[0]


def record_sent_and_mark(
    done: list[tuple[QueueItem, str, datetime]], *, worker: str, offered: QueueItem | None = None
) -> tuple[int, bool]:
    """record_sent, and in the same commit the lease renewed with its offered mark moved
    to `offered`: (how many were marked Sent, whether the lease was still running)."""
    if not done:
        return 0, offered is None or renew_lease(worker, offered)
    table = QueueItem._meta.db_table
    cases = " ".join("WHEN %s THEN %s" for _ in done)
    params: list[Any] = [Status.SENT]
    params += flatten((item.pk, message_id or "") for item, message_id, _ in done)
    params += flatten((item.pk, sent_at) for item, _, sent_at in done)
    params += [item.pk for item, _, _ in done]
    params += [Status.SENDING, Status.UNKNOWN, INTERRUPTED, worker]
    # A reconciled item this (slow but alive) worker did send is Sent after all.
    update = (
        f"UPDATE {table} SET status = %s, message_id = CASE id {cases} END,"
        f" sent_at = CASE id {cases} END, last_error = ''"
        f" WHERE id IN ({sql_placeholders(done)})"
        " AND (status = %s OR (status = %s AND last_error = %s)) AND claimed_by = %s"
    )
    if connection.vendor == "postgresql":
        return _record_sent_in_one_statement(update, params, worker, offered)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(update + " RETURNING id", params)
            marked = {row[0] for row in cursor.fetchall()}
        CampaignLogRecord.objects.write(
            sent_log(item, sent_at) for item, _, sent_at in done if item.pk in marked
        )
        renewed = offered is None or renew_lease(worker, offered)
    return len(marked), renewed


def _record_sent_in_one_statement(
    update: str, params: list[Any], worker: str, offered: QueueItem | None
) -> tuple[int, bool]:
    """PostgreSQL: the UPDATE, the Sent log rows and the lease in one round trip (and one
    commit)."""
    mass_emails = MassEmail._meta.db_table
    addresses = EmailAddress._meta.db_table
    leases = SenderLease._meta.db_table
    log_insert = CampaignLogRecord.insert_sql(
        {
            "action": "%s",
            "action_date": "s.sent_at",
            "campaign_id": "m.campaign_id",
            "mass_email_id": "s.mass_email_id",
            "queue_item_id": "s.id",
            "content_type_id": "s.content_type_id",
            "object_id": "s.object_id",
            "tracking_url_id": "NULL",
            "email_template_id": "m.email_template_id",
            "email_address": "a.address",
            "bounce_type": "''",
            "is_test": "s.is_test",
        }
    )
    renew, renew_params = "", []
    if offered is not None:
        renew = (
            f", renewed AS (UPDATE {leases} SET expires_at = now() + %s,"
            " offered_mass_email_id = %s, offered_item_id = %s"
            " WHERE holder = %s AND expires_at > now() RETURNING 1)"
        )
        renew_params = [lease_duration(), offered.mass_email_id, offered.pk, worker]
    sql = (
        f"WITH sent AS ({update} RETURNING id, mass_email_id, content_type_id, object_id,"
        " email_address_id, is_test, sent_at),"
        f" logged AS ({log_insert}"
        f" FROM sent s JOIN {mass_emails} m ON m.id = s.mass_email_id"
        f" JOIN {addresses} a ON a.id = s.email_address_id ON CONFLICT DO NOTHING){renew}"
        " SELECT (SELECT count(*) FROM sent)"
        + (", (SELECT count(*) FROM renewed)" if renew else ", 1")
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, CampaignLogRecord.Action.SENT, *renew_params])
        sent, renewed = cursor.fetchone()
    return sent, bool(renewed)


def sent_log(item: QueueItem, sent_at: datetime) -> CampaignLogRecord:
    return CampaignLogRecord.of_item(
        item,
        CampaignLogRecord.Action.SENT,
        at=sent_at,
        email_template_id=item.mass_email.email_template_id,
    )


def record_hard_bounce(item: QueueItem, reply: str) -> None:
    """An SMTP-time 5.1.x rejection is a hard bounce, through the bounce pipeline."""
    _record_bounce(item, reply, status="5.1.1", permanent=True, event_key=f"smtp:{item.uid}")


def record_soft_bounce(item: QueueItem, reply: str) -> None:
    """A recipient's temporary failures until its last attempt: a soft bounce, once."""
    _record_bounce(item, reply, status="4.0.0", permanent=False, event_key=f"smtp-soft:{item.uid}")


def _record_bounce(item: QueueItem, reply: str, *, status: str, permanent: bool, event_key: str):
    status = enhanced_status(reply) or status
    # The reason table decides, as for mailbox bounces: a block worded as 5.1.x is soft.
    judgement = reason_for(status, reply, "rcpt", permanent=permanent)
    verdict = Verdict(
        address=item.email_address.address,
        verdict=judgement.verdict,
        status=status,
        reason=judgement.reason,
        diagnostic=reply,
    )
    report = Report(recipients=[verdict], queue_item_id=str(item.uid))
    try:
        apply_report(report, source="smtp", queue_item=item, event_key=event_key)
    except Exception:
        # The item's failure is recorded already; the bounce must not undo it.
        log.exception("recording the SMTP-time bounce of queue item %s failed", item.pk)
