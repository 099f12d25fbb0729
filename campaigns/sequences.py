"""Drip sequences: enrolling who joins a list, and queueing the steps that are due.

`advance()` is the scheduled job (and `manage.py advance_sequences`). Per active
sequence, under a lock on the sequence's row:
- enrol: one INSERT ... SELECT of the list's members who joined since the
  sequence's `enrols_from` and are not enrolled yet;
- per step, with the due ones being `next_step = step AND delay_from_at <= now -
  delay` (one indexed range per step): stop who left the list or can no longer
  be mailed, count who fails the step's condition (they skip it), insert queue
  items for the rest into the step's mass email in one INSERT ... SELECT, and move
  every due enrolment on to the next step in one UPDATE.
Queueing and moving on commit together, and a queue item is unique per (mass
email, address): each person gets each step at most once, whatever crashes or
runs twice. The send tick then sends the items like any mass email's, within
the caps, skipping opted-out and invalid addresses, writing the campaign log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.models import Campaign, CampaignLogRecord, Enrolment, Sequence, SequenceStep
from massmail.models import MassEmail, QueueItem
from targets.models import RecordEmailAddress, TargetListMember
from tracking.models import Hit

LEFT_THE_LIST = "left the list"
NOT_MAILABLE = "opted out, invalid or no address"


@dataclass
class AdvanceResult:
    enrolled: int = 0
    queued: int = 0
    skipped: int = 0
    stopped: int = 0
    canceled: int = 0


def advance(now: datetime | None = None) -> AdvanceResult:
    """Enrol new members and queue every due step of every active sequence."""
    now = now or timezone.now()
    result = AdvanceResult()
    sequences = Sequence.objects.filter(active=True).exclude(
        campaign__status__in=[Campaign.Status.INACTIVE, Campaign.Status.COMPLETE]
    )
    for sequence in sequences:
        with transaction.atomic():
            Sequence.objects.select_for_update().filter(pk=sequence.pk).first()
            # Read under the lock: a run that waited for it sees the step mass emails
            # the run before made.
            steps = list(sequence.steps.select_related("mass_email").order_by("position"))
            if not steps:
                continue
            result.enrolled += enrol(sequence, steps[0])
            around = zip([None, *steps[:-1]], steps, [*steps[1:], None], strict=True)
            for previous, step, following in around:
                queue_due_step(step, previous, following, now, result)
    result.canceled = cancel_left()
    reopen_steps_with_pending()
    return result


def enrol(sequence: Sequence, first_step: SequenceStep) -> int:
    """Members who joined since `enrols_from` and are not enrolled yet: one statement."""
    enrolments = Enrolment._meta.db_table
    members = TargetListMember._meta.db_table
    sql = (
        f"INSERT INTO {enrolments} (sequence_id, content_type_id, object_id, joined_at,"
        " next_step_id, delay_from_at, stop_reason)"
        " SELECT %s, m.content_type_id, m.object_id, m.added_at, %s, m.added_at, ''"
        f" FROM {members} m WHERE m.target_list_id = %s AND NOT m.opted_out"
        " AND m.added_at >= %s"
        f" AND NOT EXISTS (SELECT 1 FROM {enrolments} e WHERE e.sequence_id = %s"
        " AND e.content_type_id = m.content_type_id AND e.object_id = m.object_id)"
        " ON CONFLICT DO NOTHING"
    )
    params = [sequence.pk, first_step.pk, sequence.target_list_id, sequence.enrols_from]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, sequence.pk])
        return cursor.rowcount


def step_mass_email(step: SequenceStep) -> MassEmail:
    """The step's own mass email, made with the step and kept like it."""
    sequence = step.sequence
    if step.mass_email_id is None:
        now = timezone.now()
        step.mass_email = MassEmail.objects.create(
            campaign=sequence.campaign,
            name=f"{sequence.name}: step {step.position}"[:200],
            # In process at once with an empty queue: the queue builder never takes it,
            # the sequence adds its items as people become due.
            status=MassEmail.Status.IN_PROCESS,
            start_at=now,
            queue_built_at=now,
            email_template=step.email_template,
        )
        step.mass_email.target_lists.set([sequence.target_list])
        SequenceStep.objects.filter(pk=step.pk).update(mass_email=step.mass_email)
    elif step.mass_email.email_template_id != step.email_template_id:
        MassEmail.objects.filter(pk=step.mass_email_id).update(email_template=step.email_template)
    return step.mass_email


def queue_due_step(
    step: SequenceStep,
    previous: SequenceStep | None,
    following: SequenceStep | None,
    now: datetime,
    result: AdvanceResult,
) -> None:
    mass_email = step_mass_email(step)
    due = due_enrolments(step, now)
    result.stopped += _stop_ineligible(due, step.sequence, now)
    condition, params = _condition_sql(step, previous)
    skipped = _count_due(step, now, f"NOT ({condition})", params) if condition else 0
    queued = _insert_items(step, mass_email, now, condition, params)
    if not due.update(
        next_step=following,
        delay_from_at=now
        if following is None or following.delay_from == SequenceStep.DelayFrom.PREVIOUS
        else F("joined_at"),
        finished_at=None if following else now,
    ):
        return
    result.queued += queued
    result.skipped += skipped
    if skipped:
        SequenceStep.objects.filter(pk=step.pk).update(skipped_count=F("skipped_count") + skipped)
    if queued:
        MassEmail.objects.filter(pk=mass_email.pk, status=MassEmail.Status.COMPLETE).update(
            status=MassEmail.Status.IN_PROCESS
        )


def due_enrolments(step: SequenceStep, now: datetime) -> QuerySet:
    """Who the step is due for: one range of the enrolment_waiting index."""
    return Enrolment.objects.filter(
        next_step=step, stopped_at__isnull=True, delay_from_at__lte=now - step.delay
    )


def still_member(sequence: Sequence) -> QuerySet:
    """The outer row's record is in the sequence's list and has not left it."""
    return TargetListMember.objects.filter(
        target_list_id=sequence.target_list_id,
        content_type_id=OuterRef("content_type_id"),
        object_id=OuterRef("object_id"),
        opted_out=False,
    )


def mailable() -> QuerySet:
    """The outer row's record has a primary address that may be mailed."""
    return RecordEmailAddress.objects.filter(
        content_type_id=OuterRef("content_type_id"),
        object_id=OuterRef("object_id"),
        primary=True,
        email_address__opt_out=False,
        email_address__invalid=False,
    )


def _stop_ineligible(due, sequence: Sequence, now: datetime) -> int:
    """Who left the list, or whose primary address may not be mailed, stops here."""
    left = due.exclude(Exists(still_member(sequence)))
    stopped = left.update(stopped_at=now, stop_reason=LEFT_THE_LIST)
    unmailable = due.exclude(Exists(mailable()))
    return stopped + unmailable.update(stopped_at=now, stop_reason=NOT_MAILABLE)


_CONDITION_HITS = {
    SequenceStep.Condition.OPENED: ("", Hit.Kind.OPEN),
    SequenceStep.Condition.NOT_OPENED: ("NOT ", Hit.Kind.OPEN),
    SequenceStep.Condition.CLICKED: ("", Hit.Kind.CLICK),
    SequenceStep.Condition.NOT_CLICKED: ("NOT ", Hit.Kind.CLICK),
}


def _condition_sql(step: SequenceStep, previous: SequenceStep | None) -> tuple[str, list]:
    """SQL over `r` (the primary address) for the step's condition on the previous step.

    Opened or clicked means a person's hit (not a scanner's) on the item of the
    previous step sent to that address. A first step has no condition.
    """
    if previous is None or step.condition not in _CONDITION_HITS:
        return "", []
    negation, kind = _CONDITION_HITS[step.condition]
    items = QueueItem._meta.db_table
    hits = Hit._meta.db_table
    sql = (
        f"{negation}EXISTS (SELECT 1 FROM {items} q JOIN {hits} h ON h.queue_item_id = q.id"
        " WHERE q.mass_email_id = %s AND q.email_address_id = r.email_address_id"
        " AND q.status = %s AND h.kind = %s AND NOT h.is_machine)"
    )
    return sql, [previous.mass_email_id or 0, QueueItem.Status.SENT, kind]


def _due_sql(step: SequenceStep, now: datetime, extra: str, params: list) -> tuple[str, list]:
    enrolments = Enrolment._meta.db_table
    links = RecordEmailAddress._meta.db_table
    sql = (
        f" FROM {enrolments} e JOIN {links} r ON r.content_type_id = e.content_type_id"
        ' AND r.object_id = e.object_id AND r."primary"'
        " WHERE e.next_step_id = %s AND e.stopped_at IS NULL AND e.delay_from_at <= %s"
    )
    if extra:
        sql += f" AND {extra}"
    return sql, [step.pk, now - step.delay, *params]


def _count_due(step: SequenceStep, now: datetime, extra: str, params: list) -> int:
    sql, sql_params = _due_sql(step, now, extra, params)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*){sql}", sql_params)
        return cursor.fetchone()[0]


def _insert_items(
    step: SequenceStep, mass_email: MassEmail, now: datetime, condition: str, params: list
) -> int:
    due, due_params = _due_sql(step, now, condition, params)
    uid = "gen_random_uuid()" if connection.vendor == "postgresql" else "lower(hex(randomblob(16)))"
    sql = (
        f"INSERT INTO {QueueItem._meta.db_table} (uid, mass_email_id, content_type_id,"
        " object_id, email_address_id, status, attempt_count, last_error, claimed_by,"
        f" message_id, is_test, created_at) SELECT {uid}, %s, e.content_type_id, e.object_id,"
        f" r.email_address_id, %s, 0, '', '', '', %s, %s{due} ORDER BY r.email_address_id"
        " ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [mass_email.pk, QueueItem.Status.PENDING, False, now, *due_params])
        return cursor.rowcount


def cancel_left() -> int:
    """Queued steps not sent yet of people who left the sequence's list: canceled."""
    canceled = 0
    for sequence in Sequence.objects.all():
        canceled += (
            QueueItem.objects.filter(
                mass_email__sequence_step__sequence=sequence,
                status=QueueItem.Status.PENDING,
                is_test=False,
            )
            .exclude(Exists(still_member(sequence)))
            .update(status=QueueItem.Status.CANCELED, last_error=LEFT_THE_LIST)
        )
    return canceled


def reopen_steps_with_pending() -> int:
    """A step's mass email completed by the send tick while new items came: in process again."""
    pending = QueueItem.objects.filter(
        mass_email=OuterRef("pk"), status=QueueItem.Status.PENDING, is_test=False
    )
    return (
        MassEmail.objects.filter(status=MassEmail.Status.COMPLETE, sequence_step__isnull=False)
        .filter(Exists(pending))
        .update(status=MassEmail.Status.IN_PROCESS)
    )


@dataclass(frozen=True)
class StepFigures:
    step: SequenceStep
    waiting: int  # enrolled people this step is next for
    stopped: int  # who left the list or could no longer be mailed before this step
    skipped: int  # whose condition did not hold
    queued: int
    sent: int
    opened: int  # distinct messages opened (log entries, as the campaign's figures)
    clicked: int
    opted_out: int
    bounced: int


def step_statistics(sequence: Sequence) -> list[StepFigures]:
    """Per step: people waiting, stopped and skipped, and the step's log; a few aggregates."""
    steps = list(sequence.steps.order_by("position"))
    enrolments = (
        Enrolment.objects.filter(sequence=sequence, next_step__isnull=False)
        .values("next_step")
        .annotate(
            waiting=Count("pk", filter=Q(stopped_at__isnull=True)),
            stopped=Count("pk", filter=Q(stopped_at__isnull=False)),
        )
    )
    people = {row["next_step"]: row for row in enrolments}
    mass_emails = [step.mass_email_id for step in steps if step.mass_email_id]
    queued = dict(
        QueueItem.objects.filter(mass_email__in=mass_emails, is_test=False)
        .values("mass_email")
        .annotate(n=Count("pk"))
        .values_list("mass_email", "n")
    )
    log = {
        (row["mass_email"], row["action"]): row["n"]
        for row in CampaignLogRecord.objects.filter(mass_email__in=mass_emails, is_test=False)
        .values("mass_email", "action")
        .annotate(n=Count("queue_item", distinct=True))
    }
    Action = CampaignLogRecord.Action
    return [
        StepFigures(
            step=step,
            waiting=people.get(step.pk, {}).get("waiting", 0),
            stopped=people.get(step.pk, {}).get("stopped", 0),
            skipped=step.skipped_count,
            queued=queued.get(step.mass_email_id, 0),
            sent=log.get((step.mass_email_id, Action.SENT), 0),
            opened=log.get((step.mass_email_id, Action.OPENED), 0),
            clicked=log.get((step.mass_email_id, Action.CLICKED), 0),
            opted_out=log.get((step.mass_email_id, Action.OPTED_OUT), 0),
            bounced=log.get((step.mass_email_id, Action.BOUNCED), 0),
        )
        for step in steps
    ]
