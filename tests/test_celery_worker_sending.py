"""A real Celery worker on Redis runs the tick: every item once, the cap held across hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from celery.worker import state
from django.utils import timezone

from massmail.models import DomainThrottle, QueueItem
from massmail.sending import CAP_WINDOW, MINUTE
from massmail.tasks import send_mass_emails
from tests.fixtures.celery_worker import running_worker, wait_until
from tests.fixtures.sending import make_queued_mass_email, set_outbound
from tests.test_domain_throttling import most_in_any_window, overlapping, pause_gmail_until, sent_to

Status = QueueItem.Status


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ticks_on_a_celery_worker_send_each_item_once_within_the_cap(
    smtp_settings, smtp_sink, celery_worker_on_redis
):
    cap = 30
    set_outbound(max_per_hour=cap, max_per_batch=None)
    mass_email = make_queued_mass_email(70)
    sent = mass_email.queue_items.filter(status=Status.SENT)
    with time_machine.travel(timezone.now(), tick=True) as clock:
        for hour in range(1, 4):
            results = [send_mass_emails.delay() for _ in range(4)]  # overlapping ticks
            expected = min(70, cap * hour)
            wait_until(lambda expected=expected: sent.count() >= expected)
            wait_until(lambda: not mass_email.queue_items.filter(status=Status.SENDING).exists())
            assert all(r.id for r in results)
            assert sent.count() == expected
            clock.shift(CAP_WINDOW + timedelta(seconds=1))
    recipients = smtp_sink.recipients()
    assert len(recipients) == len(set(recipients)) == 70
    times = sorted(sent.values_list("sent_at", flat=True))
    for index, start in enumerate(times):
        assert len([t for t in times[index:] if t < start + CAP_WINDOW]) <= cap


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_three_ticks_at_once_on_a_celery_worker_hold_domain_caps_and_a_ramp(
    settings, smtp_settings, smtp_sink
):
    """A worker running 3 ticks at a time, again and again across an hour: a capped
    domain stays within its caps in every window, a ramping one gets one connection at
    a time, the rest goes as fast as it can, and every recipient gets one message."""
    settings.MASSMAIL_DOMAIN_RAMP_START = 5
    set_outbound(max_per_hour=10_000, max_per_batch=10)  # each tick a share
    DomainThrottle.objects.create(domain="capped.test", per_minute=7, per_hour=30)
    make_queued_mass_email(domains={"capped.test": 40, "gmail.test": 40, "free.test": 40})
    smtp_sink.delay = 0.005
    start = timezone.now()
    pause_gmail_until(start)
    name = send_mass_emails.name
    with running_worker(concurrency=3), time_machine.travel(start, tick=True) as clock:
        for round_number in range(24):
            finished = state.total_count[name] + 3
            for _ in range(3):
                send_mass_emails.delay()
            wait_until(lambda finished=finished: state.total_count[name] >= finished)
            clock.shift(timedelta(seconds=30) if round_number != 15 else CAP_WINDOW)
    capped = sent_to("capped.test")
    assert len(capped) == 40
    assert most_in_any_window(capped, MINUTE) <= 7
    assert most_in_any_window(capped, CAP_WINDOW) <= 30
    gmail = [m for m in smtp_sink.received if m.rcpt_tos[0].endswith("@gmail.test")]
    assert len(gmail) == 40 and overlapping(gmail) == 0
    assert len({m.connection for m in gmail}) > 1
    recipients = smtp_sink.recipients()
    assert len(recipients) == len(set(recipients)) == 120
