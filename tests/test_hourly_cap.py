"""The hourly cap holds over all mass emails, across ticks, hours and concurrent workers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from massmail.dashboard import progress_of
from massmail.models import QueueItem
from massmail.sending import CAP_WINDOW, tick, used_in_window
from tests.fixtures.sending import make_queued_mass_email, run_ticks_at_once, set_outbound
from tests.services import require_postgres

pytestmark = pytest.mark.django_db

Status = QueueItem.Status


def assert_cap_held(cap: int) -> None:
    """No 60-minute window holds more than `cap` sent items."""
    times = sorted(
        QueueItem.objects.filter(sent_at__isnull=False).values_list("sent_at", flat=True)
    )
    for index, start in enumerate(times):
        in_window = [t for t in times[index:] if t < start + CAP_WINDOW]
        assert len(in_window) <= cap, f"{len(in_window)} sent in the hour from {start}"


def test_the_cap_counts_every_mass_email_of_the_last_60_minutes(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=10, max_per_batch=None)
    first = make_queued_mass_email(8)
    second = make_queued_mass_email(8)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert tick().sent == 10
        assert tick().sent == 0
        clock.shift(timedelta(minutes=30))
        assert tick().sent == 0
        clock.shift(timedelta(minutes=30, seconds=1))
        assert tick().sent == 6
    sent = QueueItem.objects.filter(status=Status.SENT)
    assert sent.filter(mass_email=first).count() == 8
    assert sent.filter(mass_email=second).count() == 8
    assert_cap_held(10)


def test_items_being_sent_and_unknown_ones_count_against_the_cap(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=5)
    mass_email = make_queued_mass_email(10)
    now = timezone.now()
    ids = list(mass_email.queue_items.order_by("id").values_list("id", flat=True))
    QueueItem.objects.filter(pk__in=ids[:2]).update(status=Status.SENDING, claimed_at=now)
    QueueItem.objects.filter(pk__in=ids[2:4]).update(status=Status.UNKNOWN, claimed_at=now)
    assert used_in_window(now) == 4
    assert tick().sent == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_concurrent_workers_across_hours_never_exceed_the_cap(smtp_settings, smtp_sink):
    require_postgres()  # SQLite ignores row locks
    cap = 40
    set_outbound(max_per_hour=cap, max_per_batch=None)
    mass_email = make_queued_mass_email(150)
    start = timezone.now()
    results = []

    with time_machine.travel(start, tick=True) as clock:
        for _ in range(5):
            run_ticks_at_once(3, results)
            run_ticks_at_once(2, results)  # overlapping ticks later in the same hour send nothing
            clock.shift(timedelta(minutes=20))
            run_ticks_at_once(2, results)
            clock.shift(timedelta(minutes=41))
    assert_cap_held(cap)
    recipients = smtp_sink.recipients()
    problems = [r for r in results if r.stopped or r.failed or r.unknown or r.retrying]
    assert not problems, problems
    assert len(recipients) == len(set(recipients)) == 150
    assert mass_email.queue_items.filter(status=Status.SENT).count() == 150


def test_progress_says_when_the_next_portion_goes(smtp_settings, smtp_sink):
    from django_celery_beat.models import PeriodicTask

    job = PeriodicTask.objects.get(name="Send mass emails")  # made by a migration
    assert job.task == "massmail.tasks.send_mass_emails" and job.enabled
    assert (job.interval.every, job.interval.period) == (10, "minutes")
    set_outbound(max_per_hour=3)
    mass_email = make_queued_mass_email(5)
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False):
        job.last_run_at = start
        job.save()
        assert progress_of(mass_email).next_portion_at == start + timedelta(minutes=10)
        tick()
        now = progress_of(mass_email)
        assert (now.total, now.sent, now.pending) == (5, 3, 2)
        # The cap is spent until the first of those 3 leaves the window.
        assert now.next_portion_at == start + CAP_WINDOW


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outcomes_committed_while_the_cap_is_counted_still_count():
    """Sending -> Sent committed mid-count must not make the items vanish from the cap."""
    require_postgres()  # SQLite allows one writer at a time: no commit can land mid-count
    mass_email = make_queued_mass_email(5)
    now = timezone.now()
    mass_email.queue_items.update(status=Status.SENDING, claimed_at=now, claimed_by="w1")

    def record_outcomes() -> None:  # another worker's outcome commit, on its own connection
        QueueItem.objects.filter(status=Status.SENDING).update(status=Status.SENT, sent_at=now)
        connection.close()

    def commit_after_first_query(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not done:
            done.append(True)
            worker = threading.Thread(target=record_outcomes)
            worker.start()
            worker.join()
        return result

    done: list[bool] = []
    with connection.execute_wrapper(commit_after_first_query):
        assert used_in_window(now) == 5
    assert done and QueueItem.objects.filter(status=Status.SENT).count() == 5
