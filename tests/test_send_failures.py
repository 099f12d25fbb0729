"""What SMTP failures do to queue items: retry with backoff, wait, fail, bounce."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from bounces.models import BounceEvent
from massmail.models import MassEmail, QueueItem
from massmail.sending import RETRY_BACKOFF, tick
from targets.models import EmailAddress
from tests.fixtures.sending import make_queued_mass_email, set_outbound

pytestmark = pytest.mark.django_db

Status = QueueItem.Status


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelined"])
def pipelining(request, smtp_sink) -> bool:
    """Run a test against a server without and with RFC 2920 PIPELINING."""
    smtp_sink.pipelining = request.param
    return request.param


def statuses(mass_email: MassEmail) -> dict[str, str]:
    return dict(mass_email.queue_items.values_list("email_address__address", "status"))


def test_a_recipient_rejected_with_5_1_1_fails_and_is_a_hard_bounce(
    pipelining, smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(addresses=["a@example.com", "nouser@example.com"])
    result = tick()
    assert statuses(mass_email) == {
        "a@example.com": Status.SENT,
        "nouser@example.com": Status.FAILED,
    }
    failed = mass_email.queue_items.get(status=Status.FAILED)
    assert "550" in failed.last_error and "5.1.1" in failed.last_error
    assert EmailAddress.objects.get(address="nouser@example.com").invalid
    assert BounceEvent.objects.filter(queue_item=failed).exists()
    assert result.sent == 1 and smtp_sink.recipients() == ["a@example.com"]
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.COMPLETE


def test_other_5xx_replies_fail_the_item_without_a_bounce(
    pipelining, smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(addresses=["a@example.com", "b@example.com"])
    smtp_sink.fail_next(1, "554 5.7.1 Message rejected as spam")
    tick()
    assert sorted(statuses(mass_email).values()) == [Status.FAILED, Status.SENT]
    failed = mass_email.queue_items.get(status=Status.FAILED)
    assert failed.last_error.endswith("554 5.7.1 Message rejected as spam")
    assert not failed.email_address.invalid
    assert not BounceEvent.objects.exists()


def test_throttling_stops_the_portion_without_burning_attempts(
    pipelining, smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(6)
    smtp_sink.fail_next(1, "451 4.7.1 Try again later")
    result = tick()
    assert result.sent == 0 and result.stopped.endswith("451 4.7.1 Try again later")
    items = mass_email.queue_items.all()
    assert {item.status for item in items} == {Status.PENDING}
    assert {item.attempt_count for item in items} == {0}
    assert not any(item.next_attempt_at for item in items)
    # Throttled for a while: items wait, never fail.
    for _ in range(5):
        smtp_sink.fail_next(1, "421 4.7.0 Too many messages, slow down")
        assert tick().sent == 0
    assert mass_email.queue_items.filter(status=Status.PENDING, attempt_count=0).count() == 6
    smtp_sink.fail_next(0)
    assert tick().sent == 6
    assert len(smtp_sink.recipients()) == 6


def test_a_transient_4xx_retries_with_backoff_then_fails(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=1000, max_attempts=3)
    mass_email = make_queued_mass_email(addresses=["a@example.com"])
    item = mass_email.queue_items.get()
    reply = "452 4.2.2 Mailbox full"
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for attempt in (1, 2):
            smtp_sink.fail_next(1, reply)
            tick()
            item.refresh_from_db()
            assert (item.status, item.attempt_count) == (Status.PENDING, attempt)
            assert item.next_attempt_at == timezone.now() + RETRY_BACKOFF * 2 ** (attempt - 1)
            assert tick().claimed == 0  # not before its next attempt time
            clock.shift(RETRY_BACKOFF * 2 ** (attempt - 1) + timedelta(seconds=1))
        smtp_sink.fail_next(1, reply)
        tick()
    item.refresh_from_db()
    assert (item.status, item.attempt_count) == (Status.FAILED, 3)
    assert item.last_error.endswith(reply)
    assert smtp_sink.received == []


def test_a_server_that_is_down_makes_the_queue_wait(smtp_settings, smtp_sink, outbound_unlimited):
    mass_email = make_queued_mass_email(4)
    smtp_sink.stop()
    result = tick()
    assert result.sent == 0 and "cannot reach SMTP server" in result.stopped
    items = list(mass_email.queue_items.order_by("id"))
    # The item in hand is charged an attempt; the others were never offered.
    assert [(i.status, i.attempt_count) for i in items] == [(Status.PENDING, 1)] + [
        (Status.PENDING, 0)
    ] * 3
    assert "cannot reach SMTP server" in items[0].last_error
    smtp_sink.start()
    assert tick().sent == 3  # the first one waits for its backoff
    with time_machine.travel(timezone.now() + RETRY_BACKOFF + timedelta(seconds=1)):
        assert tick().sent == 1
    assert len(smtp_sink.recipients()) == 4


def test_a_server_down_for_good_fails_items_after_max_attempts(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=1000, max_attempts=2)
    mass_email = make_queued_mass_email(1)
    smtp_sink.stop()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        tick()
        clock.shift(RETRY_BACKOFF + timedelta(seconds=1))
        tick()
    item = mass_email.queue_items.get()
    assert (item.status, item.attempt_count) == (Status.FAILED, 2)
    assert "cannot reach SMTP server" in item.last_error
