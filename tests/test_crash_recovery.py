"""A worker killed mid-portion: after recovery nothing is sent twice, nothing lost silently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from massmail.models import MassEmail, QueueItem
from massmail.sending import (
    INTERRUPTED,
    STALE_AFTER,
    UNRECORDED_WINDOW,
    reconcile_stale,
    tick,
)
from tests.fixtures.sending import make_queued_mass_email, set_outbound
from tests.services import require_postgres

Status = QueueItem.Status
ROOT = Path(__file__).resolve().parent.parent


def start_sender(port: int) -> subprocess.Popen:
    """`manage.py send_mass_emails` in its own process, on the test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "send_mass_emails"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_portion_never_causes_a_duplicate(smtp_settings, smtp_sink):
    require_postgres()  # the worker process needs a database it can share
    set_outbound(max_per_hour=10_000, max_per_batch=None)
    mass_email = make_queued_mass_email(200)
    smtp_sink.delay = 0.02
    sender = start_sender(smtp_sink.port)
    try:
        wait_for(
            lambda: len(smtp_sink.received) >= UNRECORDED_WINDOW + 10 or sender.poll() is not None
        )
        assert sender.poll() is None, sender.communicate()
        sender.send_signal(signal.SIGKILL)
        sender.wait(10)
    finally:
        if sender.poll() is None:
            sender.kill()
    smtp_sink.delay = 0
    killed_at = len(smtp_sink.received)
    assert mass_email.queue_items.filter(status=Status.SENDING).exists()

    # Too early to tell a dead worker from a slow one: nothing moves, nothing is resent.
    tick()
    assert len(smtp_sink.received) == killed_at

    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(minutes=1)):
        result = tick()
    assert 0 < result.reconciled <= UNRECORDED_WINDOW

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
    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(minutes=2)):
        assert tick().sent == len(unknown)
    assert mass_email.queue_items.filter(status=Status.SENT).count() == 200


@pytest.mark.django_db
def test_the_reconciliation_rule(outbound_unlimited):
    """Only what a dead worker may have offered becomes unknown; the rest goes back."""
    mass_email = make_queued_mass_email(UNRECORDED_WINDOW + 9)
    claimed_at = timezone.now() - STALE_AFTER - timedelta(seconds=1)
    items = mass_email.queue_items.order_by("id")
    items.update(status=Status.SENDING, claimed_at=claimed_at, claimed_by="dead:1")
    QueueItem.objects.filter(pk=items[0].pk).update(status=Status.SENT)  # recorded in time
    live = list(items.values_list("pk", flat=True))[-3:]
    QueueItem.objects.filter(pk__in=live).update(claimed_at=timezone.now(), claimed_by="live:2")
    assert reconcile_stale() == UNRECORDED_WINDOW
    statuses = list(mass_email.queue_items.order_by("id").values_list("status", flat=True))
    assert statuses == (
        [Status.SENT]
        + [Status.UNKNOWN] * UNRECORDED_WINDOW
        + [Status.PENDING] * 5
        + [Status.SENDING] * 3  # a live worker's claims are left alone
    )
    unknown = mass_email.queue_items.filter(status=Status.UNKNOWN)
    assert set(unknown.values_list("last_error", flat=True)) == {INTERRUPTED}
