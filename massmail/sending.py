"""The sending engine: claim portions within the hourly cap, send, record, reconcile.

The database is the queue of record. A tick (Celery beat task, or
`manage.py send_mass_emails`) builds the queues that are due (massmail.queue), then
sends portions:

1. Claim. Under one lock that every tick shares (`select_for_update` on the outbound
   settings row), the budget is the hourly cap minus the items sent in the last 60
   minutes, minus the items being sent right now, minus the items whose delivery became
   unknown in the last 60 minutes (they may have gone out). Up to that many pending items
   are claimed with `FOR UPDATE SKIP LOCKED`, set Sending with the claim time and the
   worker's name, and the claim is committed before any SMTP traffic. Counting Sending
   items is what keeps two ticks from spending the same budget.
2. Send. One SMTP connection per portion. Each item is re-checked first (address now
   invalid or opted out, target deleted: Failed with the reason). Outcomes are recorded
   by conditional UPDATEs (`status = sending AND claimed_by = me`) and the Sent log row
   is inserted with ON CONFLICT DO NOTHING, committed every `FLUSH_EVERY` messages.
3. Reply codes decide the item's fate:
   - 2xx: Sent.
   - 421/450/451/454 (provider throttling): the item goes back to Pending without
     burning an attempt and the portion stops; the next tick tries again.
   - other 4xx, connection refused, timeouts: the item in hand is charged an attempt and
     goes back to Pending with an exponential backoff (`RETRY_BACKOFF` x 2^(n-1)),
     Failed with the last error once `max_attempts` is reached. When the connection is
     gone the portion stops; its other items were never offered to the server and go
     back to Pending unchanged, so an outage makes the queue wait, not fail.
   - 5.1.x for the recipient: Failed, and a hard bounce through bounces.effects.
   - other 5xx: Failed with the reply.

Reconciliation rule (crashes). A worker sends its claimed items in (mass email, id)
order. Accepted messages are recorded in batches of `FLUSH_EVERY`, committed by a
thread of the worker while the next batch goes out (PostgreSQL; the next commit waits
for the previous one), so at most `UNRECORDED_WINDOW` = 2 x 25 + 1 accepted messages are
unrecorded at any time. The worker refreshes its claims (`claimed_at`) at least every
`HEARTBEAT_EVERY` while it works. Items still Sending `STALE_AFTER` (15 min) after their
claim belong to a dead worker, and then:
- its first `UNRECORDED_WINDOW` unrecorded items in sending order may have reached the
  server: they become **Delivery unknown** ("interrupted, delivery unknown"), never
  resent silently; the mass email page counts them and the admin action "Retry" on
  queue items puts chosen unknown or failed items back to Pending;
- the items after them were never offered to the server: back to Pending, sent later.
A worker that was only frozen (not dead) checks its claims before going on and stops if
they were reconciled; if it did send an item now marked unknown, its late record makes
the item Sent. A connection dropped after the whole message went out but before the
server answered leaves that one item unknown as well.
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

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from bounces.classify import Report, Verdict
from bounces.effects import apply_report
from bounces.reasons import reason_for
from campaigns.models import Campaign, CampaignLogRecord
from massmail.composition import PreparedMessage, prepare
from massmail.models import MassEmail, OutboundSettings, QueueItem
from massmail.queue import build_due_queues
from massmail.recipients import RecipientContext, recipient_contexts
from massmail.schedule import tick_interval
from massmail.sql import flatten, sql_placeholders
from massmail.transport import Transport, TransportError, enhanced_status, transport_for
from targets.models import EmailAddress

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=15)
HEARTBEAT_EVERY = timedelta(minutes=1)
RETRY_BACKOFF = timedelta(minutes=5)
CAP_WINDOW = timedelta(minutes=60)
CLAIM_CHUNK = 1000  # items claimed at once; bounds a worker's memory, not the portion
FLUSH_EVERY = 25  # accepted messages per outcome commit
# Accepted messages whose outcome may be uncommitted when a worker dies: the batch being
# committed in the background, the batch being filled, and the message in hand.
UNRECORDED_WINDOW = 2 * FLUSH_EVERY + 1
DEFAULT_TICK_MINUTES = 10
INTERRUPTED = "interrupted, delivery unknown"

Status = QueueItem.Status


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
            items = claim_portion(
                min(room, CLAIM_CHUNK), worker=worker, exclude=session.blocked_mass_emails
            )
            if not items:
                break
            result.claimed += len(items)
            session.send(items, result)
    finally:
        session.close()
    result.completed = complete_finished()
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


def claim_portion(
    limit: int, *, worker: str, exclude: Iterable[int] = (), now: datetime | None = None
) -> list[QueueItem]:
    """Claim up to `limit` due items within the hourly cap; committed before returning."""
    now = now or timezone.now()
    with transaction.atomic():
        outbound = OutboundSettings.objects.select_for_update().filter(pk=1).first()
        outbound = outbound or OutboundSettings.load()
        budget = min(limit, outbound.max_per_hour - used_in_window(now))
        if budget <= 0:
            return []
        active = MassEmail.objects.filter(status=MassEmail.Status.IN_PROCESS).exclude(
            pk__in=list(exclude)
        )
        ids: list[int] = []
        # One mass email at a time: `mass_email_id = x ORDER BY id` walks the partial
        # index of pending items in order, where an IN list would sort all of them.
        for mass_email_id in active.order_by("pk").values_list("pk", flat=True):
            ids += _due_pending(mass_email_id, now, budget - len(ids))
            if len(ids) >= budget:
                break
        if not ids:
            return []
        QueueItem.objects.filter(pk__in=ids).update(
            status=Status.SENDING, claimed_at=now, claimed_by=worker
        )
    return claimed_items(ids)


def _due_pending(mass_email_id: int, now: datetime, limit: int) -> list[int]:
    return list(
        QueueItem.objects.filter(status=Status.PENDING, is_test=False, mass_email_id=mass_email_id)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")
        .select_for_update(skip_locked=True)
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
    """A dead worker's Sending items: unknown if it may have offered them, else Pending.

    A worker sends its claimed items in (mass email, id) order and has at most
    UNRECORDED_WINDOW accepted-but-unrecorded items at any time, so only its first
    UNRECORDED_WINDOW unrecorded items can have reached the server; the items after
    them were never offered.
    """
    now = now or timezone.now()
    stale = QueueItem.objects.filter(status=Status.SENDING, claimed_at__lt=now - STALE_AFTER)
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


def complete_finished() -> int:
    """In Process mass emails with nothing pending or being sent are Complete."""
    open_items = QueueItem.objects.filter(
        mass_email=OuterRef("pk"), status__in=[Status.PENDING, Status.SENDING], is_test=False
    )
    return (
        MassEmail.objects.filter(status=MassEmail.Status.IN_PROCESS)
        .exclude(Exists(open_items))
        .update(status=MassEmail.Status.COMPLETE)
    )


# ---------------------------------------------------------------- sending


class SendingSession:
    """A tick's sending state: prepared messages and open transports, reused across portions."""

    def __init__(self, worker: str, outbound: OutboundSettings, *, is_test: bool = False) -> None:
        self.worker = worker
        self.outbound = outbound
        self.is_test = is_test
        self.prepared: dict[int, PreparedMessage] = {}
        self.transports: dict[int, Transport] = {}
        self.blocked_mass_emails: set[int] = set()
        self.last_heartbeat = time.monotonic()
        self.writer = OutcomeWriter(worker) if OutcomeWriter.usable() else None

    def send(self, items: list[QueueItem], result: TickResult) -> None:
        """Send claimed items (grouped per mass email) and record every outcome."""
        for mass_email_id, group in _by_mass_email(items).items():
            if mass_email_id in self.blocked_mass_emails:
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

    def heartbeat_due(self) -> bool:
        return time.monotonic() - self.last_heartbeat >= HEARTBEAT_EVERY.total_seconds()

    def still_owns(self, unsent: list[QueueItem]) -> bool:
        """Refresh this live worker's claims so they never look stale; False when some
        were reconciled meanwhile (this worker was frozen): then it must stop."""
        self.last_heartbeat = time.monotonic()
        refreshed = _ids(unsent).filter(status=Status.SENDING, claimed_by=self.worker)
        return refreshed.update(claimed_at=timezone.now()) == len(unsent)

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
        self.transports.clear()
        if self.writer is not None:
            self.writer.close()


class OutcomeWriter:
    """Commits batches of Sent outcomes on a thread of its own, so that waiting for a
    commit overlaps sending the next batch. One batch in flight at most."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcomes")
        self.in_flight: Future | None = None

    @staticmethod
    def usable() -> bool:
        # Its own connection must see the claims: not inside a caller's transaction
        # (tests wrapped in one), and not on SQLite, whose writers queue up anyway.
        return connection.vendor == "postgresql" and not connection.in_atomic_block

    def submit(self, batch: list[tuple[QueueItem, str, datetime]]) -> int:
        """Hand over a batch once the previous one is committed; that one's count."""
        recorded = self.wait()
        self.in_flight = self.executor.submit(record_sent, batch, worker=self.worker)
        return recorded

    def wait(self) -> int:
        """Block until the batch in flight is committed; how many it marked Sent."""
        future, self.in_flight = self.in_flight, None
        return future.result() if future is not None else 0

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


class PortionRun:
    """One mass email's claimed items, sent in order over the session's transport."""

    def __init__(self, session: SendingSession, items: list[QueueItem], result: TickResult):
        self.session = session
        self.items = items
        self.result = result
        self.mass_email = items[0].mass_email
        self.done: list[tuple[QueueItem, str, datetime]] = []

    def run(self) -> None:
        contexts = recipient_contexts(self.items)
        sendable = self._recheck(self.items, contexts)
        if not sendable:
            return
        try:
            prepared = self.session.prepared_for(self.mass_email)
            transport = self.session.transport_for(self.mass_email)
        except Exception as error:
            # A broken template or transport settings: nothing of this mass email can go.
            log.exception("cannot prepare mass email %s", self.mass_email.pk)
            self._fail_all(sendable, f"cannot prepare the message: {error}")
            return
        for position, item in enumerate(sendable):
            if self.session.heartbeat_due() and not self.session.still_owns(sendable[position:]):
                self._flush()
                self.result.stopped = "claims reconciled while this worker was stalled"
                return
            if not self._send_one(item, prepared, transport, contexts.get(item.id)):
                self._flush()
                self._stop(sendable[position + 1 :])
                return
            if len(self.done) >= FLUSH_EVERY:
                self._flush(background=True)
                if self._stopped_by_user(sendable[position + 1 :]):
                    return
        self._flush()

    def _send_one(
        self,
        item: QueueItem,
        prepared: PreparedMessage,
        transport: Transport,
        context: RecipientContext | None,
    ) -> bool:
        """Send one item and note its outcome; False when the portion must stop."""
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
        return True

    def _handle_error(self, item: QueueItem, error: TransportError) -> bool:
        worker = self.session.worker
        if self.session.is_test and not error.uncertain:
            # A test is sent now or never: no retries, no waiting for the next tick.
            self._fail(item, error.message)
            return not error.connection_lost
        if error.uncertain:
            _set_outcome(item, worker, status=Status.UNKNOWN, last_error=error.message)
            self.result.unknown += 1
        elif error.throttled:
            release([item], worker=worker, last_error=f"throttled: {error.message}")
            self.session.blocked_mass_emails.add(self.mass_email.pk)
            self.result.stopped = error.message
            return False
        elif error.permanent:
            self._fail(item, error.message)
            if error.recipient_unknown:
                record_hard_bounce(item, error.message)
        else:
            self._retry_later(item, error.message)
        if error.connection_lost:
            self.session.blocked_mass_emails.add(self.mass_email.pk)
            self.result.stopped = error.message
            return False
        return True

    def _stop(self, rest: list[QueueItem]) -> None:
        """The portion stops: the rest was never offered to the server."""
        if self.session.is_test:
            self._fail_all(rest, f"not sent: {self.result.stopped}")
        else:
            release(rest, worker=self.session.worker)

    def _retry_later(self, item: QueueItem, message: str) -> None:
        attempts = item.attempt_count + 1
        if attempts >= self.session.outbound.max_attempts:
            self._fail(item, message, attempt_count=attempts)
            return
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

    def _flush(self, *, background: bool = False) -> None:
        """Record the accepted messages; with `background`, while the next ones go out."""
        batch, self.done = self.done, []
        writer = self.session.writer
        if writer is None:
            self.result.sent += record_sent(batch, worker=self.session.worker)
            return
        if batch:
            self.result.sent += writer.submit(batch)
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
    if not done:
        return 0
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
        return _record_sent_in_one_statement(update, params)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(update + " RETURNING id", params)
            marked = {row[0] for row in cursor.fetchall()}
        CampaignLogRecord.objects.write(
            sent_log(item, sent_at) for item, _, sent_at in done if item.pk in marked
        )
    return len(marked)


def _record_sent_in_one_statement(update: str, params: list[Any]) -> int:
    """PostgreSQL: the UPDATE and the Sent log rows in one round trip (and one commit)."""
    mass_emails = MassEmail._meta.db_table
    addresses = EmailAddress._meta.db_table
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
    sql = (
        f"WITH sent AS ({update} RETURNING id, mass_email_id, content_type_id, object_id,"
        " email_address_id, is_test, sent_at),"
        f" logged AS ({log_insert}"
        f" FROM sent s JOIN {mass_emails} m ON m.id = s.mass_email_id"
        f" JOIN {addresses} a ON a.id = s.email_address_id ON CONFLICT DO NOTHING)"
        " SELECT count(*) FROM sent"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, CampaignLogRecord.Action.SENT])
        return cursor.fetchone()[0]


def sent_log(item: QueueItem, sent_at: datetime) -> CampaignLogRecord:
    return CampaignLogRecord.of_item(
        item,
        CampaignLogRecord.Action.SENT,
        at=sent_at,
        email_template_id=item.mass_email.email_template_id,
    )


def record_hard_bounce(item: QueueItem, reply: str) -> None:
    """An SMTP-time 5.1.x rejection is a hard bounce, through the bounce pipeline."""
    status = enhanced_status(reply) or "5.1.1"
    # The reason table decides, as for mailbox bounces: a block worded as 5.1.x is soft.
    judgement = reason_for(status, reply, "rcpt", permanent=True)
    verdict = Verdict(
        address=item.email_address.address,
        verdict=judgement.verdict,
        status=status,
        reason=judgement.reason,
        diagnostic=reply,
    )
    report = Report(recipients=[verdict], queue_item_id=str(item.uid))
    try:
        apply_report(report, source="smtp", queue_item=item, event_key=f"smtp:{item.uid}")
    except Exception:
        # The item's failure is recorded already; the bounce must not undo it.
        log.exception("recording the hard bounce of queue item %s failed", item.pk)
