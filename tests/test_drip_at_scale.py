"""10,000 people enrolled at once: due steps go out within the cap, once each, a worker killed."""

from __future__ import annotations

import bisect
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.utils import timezone

from campaigns.models import Enrolment, SequenceStep
from campaigns.sequences import advance
from massmail.models import MassEmail, QueueItem, SenderLease
from massmail.sending import CAP_WINDOW, tick
from targets.models import Contact, TargetListMember
from tests.factories import make_target_list
from tests.fixtures.sending import make_contacts, set_outbound, start_sender
from tests.services import require_postgres
from tests.test_crash_recovery import wait_for
from tests.test_drip_sequences import make_sequence

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Status = QueueItem.Status
ROOT = Path(__file__).resolve().parent.parent
PEOPLE = 10_000
CAP = 6_000


def advance_in_a_process() -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "advance_sequences"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _windows_within_cap(times) -> bool:
    """No 60 minutes hold more than the cap's sends."""
    times = sorted(times)
    return all(
        bisect.bisect_left(times, start + CAP_WINDOW) - index <= CAP
        for index, start in enumerate(times)
    )


def test_ten_thousand_enrolled_get_each_step_once_within_the_cap(smtp_settings, smtp_sink):
    require_postgres()  # the processes share the test database
    set_outbound(max_per_hour=CAP, max_per_batch=None)
    target_list = make_target_list()
    content_type = ContentType.objects.get_for_model(Contact)
    TargetListMember.objects.bulk_create(
        TargetListMember(target_list=target_list, content_type=content_type, object_id=c.pk)
        for c in make_contacts(PEOPLE)
    )
    sequence = make_sequence(
        target_list,
        [
            (timedelta(0), SequenceStep.DelayFrom.JOINING, "always"),
            (timedelta(days=1), SequenceStep.DelayFrom.PREVIOUS, "always"),
        ],
    )
    # Two schedulers at once (a beat misfire, cron and beat): enrolled and queued once.
    runs = [advance_in_a_process() for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    welcome, second = sequence.steps.all()
    welcome_items = QueueItem.objects.filter(mass_email=welcome.mass_email_id)
    assert Enrolment.objects.count() == PEOPLE == welcome_items.count()
    assert MassEmail.objects.count() == 2, "one mass email per step, whoever made it"

    smtp_sink.delay = 0.002
    sender = start_sender(smtp_sink.port)
    try:
        wait_for(lambda: len(smtp_sink.received) >= 500 or sender.poll() is not None)
        assert sender.poll() is None, sender.communicate()
        sender.send_signal(signal.SIGKILL)  # in the middle of a portion
        sender.wait(10)
    finally:
        if sender.poll() is None:
            sender.kill()
    smtp_sink.delay = 0
    assert welcome_items.filter(status=Status.SENDING).exists()

    # The dead worker's lease (3 s in start_sender) runs out on the database's clock.
    wait_for(lambda: not SenderLease.objects.filter(expires_at__gt=timezone.now()).exists())
    start = timezone.now()
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        tick()  # the dead worker's claims reconciled; the rest of the hour's cap
        assert advance().queued == 0
    assert len(smtp_sink.received) <= CAP + 1, "the cap held within the hour"
    assert welcome_items.filter(status=Status.PENDING).exists(), "the rest waits for the cap"
    with time_machine.travel(start + CAP_WINDOW + timedelta(minutes=20), tick=False):
        tick()
    assert not welcome_items.filter(status__in=[Status.PENDING, Status.SENDING]).exists()

    received = smtp_sink.recipients()
    assert len(received) == len(set(received)), "someone got the welcome step twice"
    unknown = welcome_items.filter(status=Status.UNKNOWN).count()
    assert welcome_items.filter(status=Status.SENT).count() + unknown == PEOPLE
    assert len(received) >= PEOPLE - unknown
    sent_times = welcome_items.filter(status=Status.SENT).values_list("sent_at", flat=True)
    assert _windows_within_cap(sent_times)

    with time_machine.travel(start + timedelta(days=1, hours=2), tick=False):
        assert advance().queued == PEOPLE
        assert advance().queued == 0
    assert QueueItem.objects.filter(mass_email=second.mass_email_id).count() == PEOPLE
