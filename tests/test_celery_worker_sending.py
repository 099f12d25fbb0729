"""A real Celery worker on Redis runs the tick: every item once, the cap held across hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from massmail.models import QueueItem
from massmail.sending import CAP_WINDOW
from massmail.tasks import send_mass_emails
from tests.fixtures.celery_worker import wait_until
from tests.fixtures.sending import make_queued_mass_email, set_outbound

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
