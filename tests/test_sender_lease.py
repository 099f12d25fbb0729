"""A slow worker is alive while its lease runs: its claims are never taken from it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from massmail.models import OutboundSettings, QueueItem, SenderLease
from massmail.sending import (
    LEASE_LOST,
    MARK_AHEAD,
    SYNC_AHEAD,
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


@pytest.mark.django_db(transaction=True)
def test_a_claim_marks_the_first_items_and_renews_the_lease_in_its_own_commit(
    outbound_unlimited,
):
    mass_email = make_queued_mass_email(20)
    session = SendingSession("w:1", OutboundSettings.load())
    try:
        SenderLease.objects.filter(holder="w:1").update(
            expires_at=timezone.now() + timedelta(seconds=5)
        )
        items = session.claim(50)
        lease = SenderLease.objects.get(holder="w:1")
    finally:
        session.close()
    sixth = items[SYNC_AHEAD]
    assert (lease.offered_mass_email_id, lease.offered_item_id) == (mass_email.pk, sixth.pk)
    assert lease.expires_at > timezone.now() + timedelta(seconds=60)  # renewed: 90 s


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_lease_ran_out_claims_nothing(outbound_unlimited):
    mass_email = make_queued_mass_email(5)
    session = SendingSession("frozen:2", OutboundSettings.load())
    SenderLease.objects.filter(holder="frozen:2").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    try:
        assert session.claim(10) == []
        assert session.lease_lost
    finally:
        session.close()
    assert set(mass_email.queue_items.values_list("status", flat=True)) == {Status.PENDING}
    assert SenderLease.objects.get(holder="frozen:2").offered_item_id is None


@pytest.mark.django_db(transaction=True)
def test_a_portion_renews_its_lease_on_commits_it_makes_anyway(
    smtp_settings, smtp_sink, outbound_unlimited, monkeypatch
):
    """100 items, 4 batches: the claim's commit and one writer commit after the first
    accepted message are all the lease costs (it used to be 5 waits for a renewal at the
    start of every portion); the batches' commits carry the rest of the marks."""
    import massmail.sending as sending

    mass_email = make_queued_mass_email(100)
    renewals = []
    renew = sending.renew_lease

    def counted(worker, offered=None):
        renewals.append(offered.pk if offered is not None else None)
        return renew(worker, offered)

    monkeypatch.setattr(sending, "renew_lease", counted)
    assert tick(worker="w:2").sent == 100
    ids = list(mass_email.queue_items.order_by("id").values_list("id", flat=True))
    assert renewals == [ids[SYNC_AHEAD], ids[MARK_AHEAD - 1]]
    assert len(set(smtp_sink.recipients())) == 100
