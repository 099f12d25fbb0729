"""A worker killed mid-portion: after recovery nothing is sent twice, nothing lost silently."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from massmail.models import MassEmail, QueueItem, SenderLease
from massmail.sending import (
    INTERRUPTED,
    MARK_AHEAD,
    SYNC_AHEAD,
    UNRECORDED_WINDOW,
    reconcile_stale,
    tick,
)
from tests.fixtures.sending import LEASE_SECONDS, make_queued_mass_email, set_outbound, start_sender
from tests.services import require_postgres

Status = QueueItem.Status


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def kill_after(sender: subprocess.Popen, condition) -> None:
    try:
        wait_for(lambda: condition() or sender.poll() is not None)
        assert sender.poll() is None, sender.communicate()
        sender.send_signal(signal.SIGKILL)
        sender.wait(10)
    finally:
        if sender.poll() is None:
            sender.kill()


def reconcile_when_the_lease_runs_out(mass_email: MassEmail) -> tuple[int, float]:
    """Reconcile until the dead worker's claims are taken back: (unknown, seconds it took)."""
    started, unknown = time.monotonic(), 0
    sending = mass_email.queue_items.filter(status=Status.SENDING)
    while sending.exists():
        assert time.monotonic() - started < LEASE_SECONDS + 5, "claims never taken back"
        unknown += reconcile_stale()
        time.sleep(0.05)
    return unknown, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_portion_never_causes_a_duplicate(smtp_settings, smtp_sink):
    require_postgres()  # the worker process needs a database it can share
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    mass_email = make_queued_mass_email(200)
    smtp_sink.delay = 0.02
    sender = start_sender(smtp_sink.port)
    kill_after(sender, lambda: len(smtp_sink.received) >= UNRECORDED_WINDOW + 10)
    smtp_sink.delay = 0
    killed_at = len(smtp_sink.received)
    assert mass_email.queue_items.filter(status=Status.SENDING).exists()

    # Its lease still runs: too early to tell a dead worker from a slow one.
    assert tick().reconciled == 0
    assert len(smtp_sink.received) == killed_at

    unknown, took = reconcile_when_the_lease_runs_out(mass_email)
    assert 0 < unknown <= MARK_AHEAD
    assert took <= LEASE_SECONDS + 1
    assert not SenderLease.objects.filter(expires_at__lt=timezone.now()).exists()
    tick()  # sends what went back to Pending

    received = smtp_sink.recipients()
    assert len(received) == len(set(received)), "an address got the message twice"
    items = {
        item.email_address.address: item
        for item in mass_email.queue_items.select_related("email_address")
    }
    assert {item.status for item in items.values()} <= {Status.SENT, Status.UNKNOWN}
    unknown = [a for a, item in items.items() if item.status == Status.UNKNOWN]
    assert all(items[a].last_error == INTERRUPTED for a in unknown)
    # Every Sent item was received once; every unknown one was offered at most once.
    assert {a for a, item in items.items() if item.status == Status.SENT} <= set(received)
    assert len(received) == len(items) - len(unknown) + len(set(unknown) & set(received))
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.COMPLETE

    # A person decides to send the unknown ones again: "Retry".
    assert mass_email.queue_items.filter(status=Status.UNKNOWN).retry() == len(unknown)
    assert tick().sent == len(unknown)
    assert mass_email.queue_items.filter(status=Status.SENT).count() == 200


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_again_and_again_unknown_stays_within_what_was_in_flight(smtp_settings, smtp_sink):
    """Each kill leaves at most MARK_AHEAD items unknown, never the merely claimed ones.

    Today's figures of the old rule: every dead worker left its first 2 x 25 + 1 unrecorded
    claims unknown, whether or not it ever reached them."""
    require_postgres()
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    mass_email = make_queued_mass_email(400)
    smtp_sink.delay = 0.01
    unknown_items = mass_email.queue_items.filter(status=Status.UNKNOWN)
    for _ in range(4):
        before = len(smtp_sink.received)
        kill_after(start_sender(smtp_sink.port), lambda b=before: len(smtp_sink.received) >= b + 40)
        was_unknown = set(unknown_items.values_list("pk", flat=True))
        unknown, _ = reconcile_when_the_lease_runs_out(mass_email)
        assert unknown <= MARK_AHEAD
        # What the killed worker had handed over and not yet recorded is unknown, at most
        # MARK_AHEAD in all; nothing it merely claimed is.
        received = set(smtp_sink.recipients())
        new_unknown = unknown_items.exclude(pk__in=was_unknown)
        assert new_unknown.count() == unknown
        handed = set(new_unknown.values_list("email_address__address", flat=True)) & received
        unrecorded = received - set(
            mass_email.queue_items.filter(status=Status.SENT).values_list(
                "email_address__address", flat=True
            )
        )
        assert unrecorded <= set(unknown_items.values_list("email_address__address", flat=True))
        assert len(handed) <= unknown
    smtp_sink.delay = 0
    tick()
    received = smtp_sink.recipients()
    assert len(received) == len(set(received)), "an address got the message twice"
    statuses = set(mass_email.queue_items.values_list("status", flat=True))
    assert statuses <= {Status.SENT, Status.UNKNOWN}
    assert unknown_items.count() <= 4 * MARK_AHEAD


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_before_it_reached_the_server_leaves_almost_nothing_unknown(
    smtp_settings,
):
    """Its claims were committed, but the server never even greeted it: the old rule
    made its first 2 x 25 + 1 claims unknown; now only the few its mark covered are."""
    require_postgres()
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    mass_email = make_queued_mass_email(200)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        sender = start_sender(silent.getsockname()[1])
        kill_after(
            sender,
            lambda: SenderLease.objects.filter(offered_item_id__isnull=False).exists(),
        )
    unknown, _ = reconcile_when_the_lease_runs_out(mass_email)
    assert unknown <= SYNC_AHEAD + 1
    assert mass_email.queue_items.filter(status=Status.PENDING).count() >= 200 - unknown


@pytest.mark.django_db
def test_the_reconciliation_rule(outbound_unlimited):
    """Only what a dead worker may have offered becomes unknown; the rest goes back."""
    mass_email = make_queued_mass_email(20)
    items = list(mass_email.queue_items.order_by("id"))
    now = timezone.now()
    mass_email.queue_items.update(status=Status.SENDING, claimed_at=now, claimed_by="dead:1")
    QueueItem.objects.filter(pk=items[0].pk).update(status=Status.SENT)  # recorded in time
    # The dead worker's mark: it may have handed items up to the 6th to the server.
    SenderLease.objects.create(
        holder="dead:1",
        expires_at=now - timedelta(seconds=1),
        offered_mass_email_id=mass_email.pk,
        offered_item_id=items[5].pk,
    )
    live = [item.pk for item in items[-3:]]
    QueueItem.objects.filter(pk__in=live).update(claimed_by="live:2")
    SenderLease.objects.create(holder="live:2", expires_at=now + timedelta(minutes=1))
    # A worker without a lease (older code) is judged by the age of its claims.
    old = [item.pk for item in items[14:17]]
    QueueItem.objects.filter(pk__in=old).update(
        claimed_by="old:3", claimed_at=now - timedelta(minutes=16)
    )
    assert reconcile_stale() == 5 + 3
    statuses = list(mass_email.queue_items.order_by("id").values_list("status", flat=True))
    assert statuses == (
        [Status.SENT]
        + [Status.UNKNOWN] * 5  # up to the mark
        + [Status.PENDING] * 8  # merely claimed
        + [Status.UNKNOWN] * 3  # no lease: the old rule (fewer than its window)
        + [Status.SENDING] * 3  # a live worker's claims are left alone
    )
    unknown = mass_email.queue_items.filter(status=Status.UNKNOWN)
    assert set(unknown.values_list("last_error", flat=True)) == {INTERRUPTED}
    assert list(SenderLease.objects.values_list("holder", flat=True)) == ["live:2"]


@pytest.mark.django_db
def test_a_dead_worker_that_offered_nothing_leaves_nothing_unknown(outbound_unlimited):
    mass_email = make_queued_mass_email(10)
    mass_email.queue_items.update(
        status=Status.SENDING, claimed_at=timezone.now(), claimed_by="dead:1"
    )
    SenderLease.objects.create(holder="dead:1", expires_at=timezone.now() - timedelta(seconds=1))
    assert reconcile_stale() == 0
    assert set(mass_email.queue_items.values_list("status", flat=True)) == {Status.PENDING}
