"""A recipient's own temporary failure defers that recipient only, never the portion."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from massmail.dashboard import why_waiting
from massmail.models import QueueItem
from massmail.sending import RETRY_BACKOFF, tick
from tests.fixtures.sending import make_queued_mass_email, set_outbound

pytestmark = pytest.mark.django_db

Status = QueueItem.Status
STUBBORN = "stubborn@example.com"


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-at-a-time", "pipelined"])
def test_a_persistent_451_recipient_among_200(pipelining, smtp_settings, smtp_sink):
    set_outbound(max_per_hour=10_000, max_per_batch=None, max_attempts=3)
    smtp_sink.pipelining = pipelining
    mass_email = make_queued_mass_email(100, addresses=[STUBBORN])
    more = make_queued_mass_email(99)
    more.queue_items.update(mass_email=mass_email)  # one mass email of 200, stubborn 101st
    smtp_sink.refuse[STUBBORN] = "451 4.2.0 <stubborn@example.com>: try again later"
    stubborn = mass_email.queue_items.get(email_address__address=STUBBORN)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        result = tick()
        assert (result.sent, result.retrying) == (199, 1)  # the others in the same tick
        for attempt in (1, 2):
            stubborn.refresh_from_db()
            assert (stubborn.status, stubborn.attempt_count) == (Status.PENDING, attempt)
            backoff = RETRY_BACKOFF * 2 ** (attempt - 1)
            assert stubborn.next_attempt_at == timezone.now() + backoff
            assert [(w.key, w.count) for w in why_waiting(mass_email)] == [("retrying", 1)]
            assert tick().claimed == 0  # its own backoff
            clock.shift(backoff + timedelta(seconds=1))
            tick()
    stubborn.refresh_from_db()
    assert (stubborn.status, stubborn.attempt_count) == (Status.FAILED, 3)
    assert "451 4.2.0" in stubborn.last_error
    bounced = CampaignLogRecord.objects.filter(
        queue_item=stubborn, action=CampaignLogRecord.Action.BOUNCED
    )
    assert list(bounced.values_list("bounce_type", flat=True)) == [CampaignLogRecord.Bounce.SOFT]
    received = smtp_sink.recipients()
    assert len(received) == len(set(received)) == 199
    assert smtp_sink.rcpt_attempts.count(STUBBORN) == 3
    tick()
    assert bounced.count() == 1  # logged once
