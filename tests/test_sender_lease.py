"""A slow worker is alive while its lease runs: its claims are never taken from it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from massmail.models import OutboundSettings, QueueItem, SenderLease
from massmail.sending import (
    LEASE_LOST,
    SendingSession,
    TickResult,
    claim_portion,
    reconcile_stale,
    tick,
    unleased_stale_after,
)
from tests.fixtures.sending import make_queued_mass_email, set_outbound
from tests.services import require_postgres
from tests.test_crash_recovery import LEASE_SECONDS, start_sender, wait_for

Status = QueueItem.Status


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_slow_worker_keeps_its_claims_past_the_old_stale_age(smtp_settings, smtp_sink):
    """Worker A (its own process) sends through a slow server for several lease lengths,
    while worker B ticks with its clock past the old 15-minute rule: 0 twice, 0 lost."""
    require_postgres()
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    mass_email = make_queued_mass_email(40)
    smtp_sink.delay = 0.25  # 10 s for the portion: more than 3 leases
    sender = start_sender(smtp_sink.port)
    try:
        wait_for(lambda: mass_email.queue_items.filter(status=Status.SENDING).count() == 40)
        b_ticks = 0
        while sender.poll() is None:
            with time_machine.travel(timezone.now() + unleased_stale_after() + timedelta(1)):
                result = tick()
            assert result.reconciled == 0 and result.claimed == 0
            b_ticks += 1
        assert sender.returncode == 0, sender.communicate()
    finally:
        if sender.poll() is None:
            sender.kill()
    assert b_ticks > 10
    received = smtp_sink.recipients()
    assert len(received) == len(set(received)) == 40
    assert set(mass_email.queue_items.values_list("status", flat=True)) == {Status.SENT}
    assert smtp_sink.delay * 40 > 3 * LEASE_SECONDS


@pytest.mark.django_db
def test_a_tick_marks_what_it_offers_and_ends_its_lease(
    smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(3)
    assert tick(worker="w:1").sent == 3
    lease = SenderLease.objects.get(holder="w:1")
    last = mass_email.queue_items.order_by("id").last()
    assert (lease.offered_mass_email_id, lease.offered_item_id) == (mass_email.pk, last.pk)
    assert lease.expires_at <= timezone.now()  # done: ended, gone at the next reconcile
    reconcile_stale()
    assert not SenderLease.objects.exists()


@pytest.mark.django_db
def test_a_worker_whose_lease_ran_out_sends_nothing_more(
    smtp_settings, smtp_sink, outbound_unlimited
):
    """Frozen past its lease (its claims may be someone else's now): it stops."""
    mass_email = make_queued_mass_email(5)
    session = SendingSession("frozen:1", OutboundSettings.load())
    items = claim_portion(10, worker="frozen:1")
    SenderLease.objects.filter(holder="frozen:1").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    result = TickResult()
    try:
        session.send(items, result)
    finally:
        session.close()
    assert result.stopped == LEASE_LOST and result.sent == 0
    assert smtp_sink.received == []
    assert set(mass_email.queue_items.values_list("status", flat=True)) == {Status.PENDING}


@pytest.mark.django_db
def test_the_page_says_a_dead_workers_claims_go_back_at_the_next_tick(outbound_unlimited):
    from massmail.dashboard import progress_of

    mass_email = make_queued_mass_email(4)
    now = timezone.now()
    items = list(mass_email.queue_items.order_by("pk"))
    QueueItem.objects.filter(pk__in=[i.pk for i in items[:2]]).update(
        status=Status.SENDING, claimed_at=now, claimed_by="dead:1"
    )
    QueueItem.objects.filter(pk=items[2].pk).update(
        status=Status.SENDING, claimed_at=now, claimed_by="alive:2"
    )
    SenderLease.objects.create(holder="dead:1", expires_at=now - timedelta(seconds=1))
    SenderLease.objects.create(holder="alive:2", expires_at=now + timedelta(minutes=1))
    silent = progress_of(mass_email).silent
    assert silent.count == 2  # the live worker's claim, however old, is not silent
    assert silent.freed_at <= now + timedelta(minutes=10)  # the next tick, not 15 minutes
