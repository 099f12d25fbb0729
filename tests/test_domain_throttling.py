"""Per receiving domain: caps the administrator sets, pauses the domain asks for."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from massmail.dashboard import why_waiting
from massmail.models import DomainThrottle, QueueItem, SendingPause
from massmail.sending import CAP_WINDOW, MINUTE, tick
from tests.fixtures.sending import make_queued_mass_email, run_ticks_at_once, set_outbound
from tests.services import require_postgres

pytestmark = pytest.mark.django_db

Status = QueueItem.Status


def sent_to(domain: str) -> list:
    return sorted(
        QueueItem.objects.filter(
            status=Status.SENT, email_address__address__endswith=f"@{domain}"
        ).values_list("sent_at", flat=True)
    )


def most_in_any_window(times: list, window: timedelta) -> int:
    return max(
        (len([t for t in times[i:] if t < start + window]) for i, start in enumerate(times)),
        default=0,
    )


@pytest.mark.parametrize(
    "reply",
    ["421 4.7.0 Try again later, closing connection", "450 4.7.28 Unusual rate, slow down"],
)
def test_a_domain_that_asks_us_to_wait_pauses_alone(reply, smtp_settings, smtp_sink):
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    mass_email = make_queued_mass_email(domains={"gmail.test": 30, "other.test": 30})
    smtp_sink.refuse["@gmail.test"] = reply
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        result = tick()
        assert result.sent == 30  # every other.test recipient, in the same tick
        assert len(sent_to("other.test")) == 30 and sent_to("gmail.test") == []
        gmail = mass_email.queue_items.filter(email_address__address__endswith="@gmail.test")
        assert set(gmail.values_list("status", "attempt_count")) == {(Status.PENDING, 0)}
        assert smtp_sink.rcpt_attempts.count(gmail.first().email_address.address) <= 1
        pause = SendingPause.objects.get(kind=SendingPause.Kind.DOMAIN, key="gmail.test")
        assert pause.paused_until == start + timedelta(minutes=10)
        assert [(w.key, w.count) for w in why_waiting(mass_email)] == [("domain-paused", 30)]
        clock.shift(timedelta(minutes=5))
        assert tick().claimed == 0
        del smtp_sink.refuse["@gmail.test"]
        clock.shift(timedelta(minutes=5, seconds=1))
        assert tick().sent == 30
    received = smtp_sink.recipients()
    assert len(received) == len(set(received)) == 60
    assert why_waiting(mass_email) == []


def test_temporary_failures_in_a_row_pause_their_domain(settings, smtp_settings, smtp_sink):
    settings.MASSMAIL_DOMAIN_FAILURES_IN_A_ROW = 3
    set_outbound(max_per_hour=10_000, max_per_batch=None, max_attempts=5)
    mass_email = make_queued_mass_email(domains={"flaky.test": 10, "fine.test": 10})
    smtp_sink.refuse["@flaky.test"] = "451 4.3.0 Temporary lookup failure"
    result = tick()
    assert result.sent == 10 and result.retrying == 3  # the 4th to flaky.test waits
    assert SendingPause.objects.filter(key="flaky.test").exists()
    flaky = mass_email.queue_items.filter(email_address__address__endswith="@flaky.test")
    assert sorted(flaky.values_list("attempt_count", flat=True)) == [0] * 7 + [1] * 3


def test_a_domain_cap_holds_per_minute_and_per_hour(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    DomainThrottle.objects.create(domain="Capped.test", per_minute=4, per_hour=10)
    mass_email = make_queued_mass_email(domains={"capped.test": 15, "free.test": 15})
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert tick().sent == 15 + 4
        assert tick().sent == 0
        waiting = why_waiting(mass_email)
        assert [(w.key, w.count) for w in waiting] == [("domain-capped", 11)]
        for _ in range(3):
            clock.shift(MINUTE + timedelta(seconds=1))
            tick()
        assert len(sent_to("capped.test")) == 10  # the hour's cap
        clock.shift(CAP_WINDOW)
        tick()
    assert len(sent_to("capped.test")) == 14 and len(sent_to("free.test")) == 15


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_domain_cap_is_never_exceeded_across_three_workers(smtp_settings, smtp_sink):
    require_postgres()  # SQLite ignores row locks
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    DomainThrottle.objects.create(domain="capped.test", per_minute=7, per_hour=30)
    make_queued_mass_email(domains={"capped.test": 80, "free.test": 40})
    results = []

    with time_machine.travel(timezone.now(), tick=True) as clock:
        for _ in range(4):
            for _ in range(6):
                run_ticks_at_once(3, results)
                clock.shift(timedelta(seconds=30))
            clock.shift(CAP_WINDOW)
    capped = sent_to("capped.test")
    assert most_in_any_window(capped, MINUTE) <= 7
    assert most_in_any_window(capped, CAP_WINDOW) <= 30
    assert len(capped) == 80 and len(sent_to("free.test")) == 40
    recipients = smtp_sink.recipients()
    assert len(recipients) == len(set(recipients)) == 120
    assert not [r for r in results if r.failed or r.unknown or r.retrying]


def pause_gmail_until(moment, ramp_minutes: int = 30) -> None:
    SendingPause.objects.create(
        kind=SendingPause.Kind.DOMAIN,
        key="gmail.test",
        since=moment - timedelta(minutes=10),
        paused_until=moment,
        ramp_until=moment + timedelta(minutes=ramp_minutes),
        reason="421 4.7.28 Our system has detected an unusual rate of unsolicited mail",
    )


def test_after_its_pause_a_domain_ramps_up_one_connection_at_a_time(
    settings, smtp_settings, smtp_sink
):
    """Gmail's advice after a 4.7.28: wait, then one connection, then more. While one
    worker sends to the domain nobody else gets its items; the rate doubles a minute."""
    from massmail.sending import claim_portion

    settings.MASSMAIL_DOMAIN_RAMP_START = 4
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    mass_email = make_queued_mass_email(domains={"gmail.test": 40, "other.test": 10})
    start = timezone.now()
    pause_gmail_until(start + timedelta(minutes=10))
    with time_machine.travel(start, tick=False) as clock:
        assert tick().sent == 10 and sent_to("gmail.test") == []
        clock.shift(timedelta(minutes=10, seconds=1))  # the pause is over: the ramp
        gmail = mass_email.queue_items.filter(email_address__address__endswith="@gmail.test")
        first = claim_portion(1000, worker="a:1")
        assert len(first) == 4  # the first minute's rate, to one worker
        assert claim_portion(1000, worker="b:2") == []  # a's connection is the one
        waiting = why_waiting(mass_email)
        assert [(w.key, w.count) for w in waiting] == [("domain-ramping", 36)]
        assert "one connection at a time and 4 a minute" in waiting[0].label
        gmail.filter(status=Status.SENDING).update(status=Status.PENDING, claimed_by="")
        assert tick().sent == 4
        assert tick().sent == 0  # this minute's 4 are spent
        for expected in (8, 16, 12):  # 4 x 2, 4 x 4, the rest
            clock.shift(MINUTE + timedelta(seconds=1))
            assert tick().sent == expected
    received = smtp_sink.recipients()
    assert len(received) == len(set(received)) == 50
    assert why_waiting(mass_email) == []


def test_a_new_refusal_during_the_ramp_pauses_the_domain_again(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    make_queued_mass_email(domains={"gmail.test": 10})
    start = timezone.now()
    pause_gmail_until(start)
    smtp_sink.refuse["@gmail.test"] = "421 4.7.28 Unusual rate of unsolicited mail"
    with time_machine.travel(start + timedelta(seconds=1), tick=False):
        assert tick().sent == 0
        pause = SendingPause.objects.get(key="gmail.test")
        assert pause.paused_until == timezone.now() + timedelta(minutes=10)
        assert pause.ramp_until == pause.paused_until + timedelta(minutes=30)
        assert pause.since == timezone.now()  # a new pause, not the old one going on


def overlapping(deliveries: list) -> int:
    """How many deliveries began before the one before them (in time) had ended."""
    ordered = sorted(deliveries, key=lambda d: d.started)
    pairs = zip(ordered, ordered[1:], strict=False)
    return sum(1 for before, after in pairs if after.started < before.ended)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_ramping_domain_gets_one_connection_across_three_workers(
    settings, smtp_settings, smtp_sink
):
    """Three workers at once, each with its own SMTP connection: the ramping domain's
    messages never overlap in time (its other recipients' do), and its rate holds."""
    require_postgres()
    settings.MASSMAIL_DOMAIN_RAMP_START = 5
    set_outbound(max_per_hour=10_000, max_per_batch=10)  # every worker gets a share
    make_queued_mass_email(domains={"gmail.test": 60, "free.test": 60})
    smtp_sink.delay = 0.01
    results = []
    start = timezone.now()
    pause_gmail_until(start)
    with time_machine.travel(start, tick=True) as clock:
        for _ in range(14):
            run_ticks_at_once(3, results)
            clock.shift(timedelta(seconds=30))
    gmail = [m for m in smtp_sink.received if m.rcpt_tos[0].endswith("@gmail.test")]
    free = [m for m in smtp_sink.received if m.rcpt_tos[0].endswith("@free.test")]
    assert len(gmail) == 60 and len(free) == 60
    assert overlapping(gmail) == 0
    assert overlapping(free) > 0  # the measure sees concurrent connections when they exist
    assert len({m.connection for m in gmail}) > 1  # not one worker's luck: several took turns
    for sent_at in sent_to("gmail.test"):
        rate = 5 * 2 ** int((sent_at - start) / MINUTE)
        in_minute = [t for t in sent_to("gmail.test") if sent_at - MINUTE < t <= sent_at]
        assert len(in_minute) <= rate
    recipients = smtp_sink.recipients()
    assert len(recipients) == len(set(recipients)) == 120
    assert not [r for r in results if r.failed or r.unknown or r.retrying]
