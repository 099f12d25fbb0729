"""What SMTP failures do to queue items: retry with backoff, wait, fail, bounce."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from bounces.models import BounceEvent
from massmail.dashboard import why_waiting
from massmail.models import MassEmail, QueueItem, SendingPause
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


def test_a_421_at_rcpt_pauses_the_domain_without_burning_attempts(
    pipelining, smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(6)
    smtp_sink.fail_next(1, "421 4.7.0 Too many messages, slow down")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert tick().sent == 0  # every item is at example.com, now paused
        items = mass_email.queue_items.all()
        assert {item.status for item in items} == {Status.PENDING}
        assert {item.attempt_count for item in items} == {0}
        assert not any(item.next_attempt_at for item in items)
        pause = SendingPause.objects.get(kind=SendingPause.Kind.DOMAIN)
        assert pause.key == "example.com" and "421" in pause.reason
        assert pause.paused_until == start + timedelta(minutes=10)
        clock.shift(timedelta(minutes=9))
        assert tick().claimed == 0  # still paused: nothing is even claimed
        clock.shift(timedelta(minutes=1, seconds=1))
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
    # An outage is nobody's fault: no item is charged an attempt, none waits for a backoff.
    assert [(i.status, i.attempt_count, i.next_attempt_at) for i in items] == [
        (Status.PENDING, 0, None)
    ] * 4
    assert "cannot reach SMTP server" in items[0].last_error
    waiting = why_waiting(mass_email)
    assert [(w.key, w.count) for w in waiting] == [("server", 4)]
    assert "cannot reach SMTP server" in waiting[0].label
    smtp_sink.start()
    assert tick().sent == 4
    assert len(smtp_sink.recipients()) == 4
    assert why_waiting(mass_email) == []


def test_a_server_down_for_hours_fails_nobody(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=1000, max_attempts=2)
    mass_email = make_queued_mass_email(1)
    smtp_sink.stop()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(12):
            tick()
            clock.shift(RETRY_BACKOFF * 4)
    item = mass_email.queue_items.get()
    assert (item.status, item.attempt_count) == (Status.PENDING, 0)
    assert "cannot reach SMTP server" in item.last_error
    smtp_sink.start()
    assert tick().sent == 1


@pytest.mark.parametrize(
    "reply", ["451 4.3.0 Sender throttled, try later", "553 5.7.1 Sender address rejected"]
)
def test_a_refused_mail_from_stops_the_portion_and_charges_nobody(
    reply, smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(3)
    smtp_sink.mail_reply = reply
    result = tick()
    assert result.sent == 0 and f"MAIL FROM: {reply}" in result.stopped
    assert set(mass_email.queue_items.values_list("status", "attempt_count")) == {
        (Status.PENDING, 0)
    }
    assert [w.key for w in why_waiting(mass_email)] == ["server"]
    smtp_sink.mail_reply = ""
    assert tick().sent == 3
