"""The three cases of issue 12, measured: run it on today's engine and on a change.

1. A slow but live worker: worker A (its own process) sends 300 items through a slow
   SMTP server while worker B ticks with its clock 16 minutes ahead (past the old
   15-minute stale rule): messages received, duplicates, unknown.
2. One recipient answering 451 4.2.0 at RCPT TO among 200: after 6 ticks, how many
   are sent and pending; then what becomes of that recipient.
3. Workers SIGKILLed mid-portion, again and again: unknown items, and how many of
   them the SMTP server really received.

Only the engine's public surface is used (tick, reconcile_stale, `manage.py
send_mass_emails`), so the same script runs on any version of it.

    .venv/bin/python bench/bench_sending_guarantees.py [--kills 6]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta

import benchdb

benchdb.use_database("sending_guarantees")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "0")
LEASE_SECONDS = 3

import django  # noqa: E402

django.setup()

import time_machine  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from massmail.models import MassEmail, QueueItem  # noqa: E402
from massmail.sending import reconcile_stale, tick  # noqa: E402
from tests.fixtures.sending import (  # noqa: E402
    make_queued_mass_email,
    set_outbound,
    start_sender,
)
from tests.services import free_port  # noqa: E402

Status = QueueItem.Status
PAST_THE_OLD_RULE = timedelta(minutes=16)


class Sink:
    """aiosmtpd in a thread: a delay per message and refused addresses."""

    def __init__(self) -> None:
        self.port = free_port()
        self.delay = 0.0
        self.refuse: dict[str, str] = {}
        self.received: list[str] = []
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.received.extend(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


def fresh_mass_email(count: int, addresses=()) -> MassEmail:
    MassEmail.objects.filter(status=MassEmail.Status.IN_PROCESS).update(
        status=MassEmail.Status.COMPLETE
    )
    return make_queued_mass_email(count, addresses=addresses)


def statuses(mass_email: MassEmail) -> dict[str, int]:
    return dict(Counter(mass_email.queue_items.values_list("status", flat=True)))


def slow_worker(sink: Sink) -> None:
    mass_email = fresh_mass_email(300)
    sink.received.clear()
    sink.delay = 0.02
    worker_a = start_sender(sink.port, LEASE_SECONDS, subprocess.DEVNULL)
    while not mass_email.queue_items.filter(status=Status.SENDING).exists():
        time.sleep(0.02)
    b_ticks = 0
    while worker_a.poll() is None:
        with time_machine.travel(timezone.now() + PAST_THE_OLD_RULE):
            tick()  # worker B, whose clock says A's claims are 16 minutes old
        b_ticks += 1
        time.sleep(0.2)
    sink.delay = 0
    with time_machine.travel(timezone.now() + PAST_THE_OLD_RULE):
        tick()
    twice = sum(n - 1 for n in Counter(sink.received).values() if n > 1)
    print(
        f"1. slow worker: 300 items, {len(sink.received)} messages received,"
        f" {twice} duplicates; items {statuses(mass_email)}; B ticked {b_ticks} times"
    )


def stubborn_recipient(sink: Sink) -> None:
    stubborn = "stubborn@example.com"
    mass_email = fresh_mass_email(2)
    for others in (make_queued_mass_email(addresses=[stubborn]), make_queued_mass_email(197)):
        others.queue_items.update(mass_email=mass_email)  # the stubborn one is third of 200
    sink.received.clear()
    sink.refuse[stubborn] = "451 4.2.0 <stubborn@example.com>: try again later"
    set_outbound(max_attempts=3)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(6):
            tick()
            clock.shift(timedelta(minutes=10))
        after_six = statuses(mass_email)
        for _ in range(12):
            clock.shift(timedelta(hours=1))
            tick()
    item = mass_email.queue_items.get(email_address__address=stubborn)
    print(
        f"2. one recipient answering 451 among 200: after 6 ticks {after_six};"
        f" after 12 more hours {statuses(mass_email)}; that recipient:"
        f" {item.status}, {item.attempt_count} attempts"
    )
    sink.refuse.clear()


def killed_again_and_again(sink: Sink, kills: int) -> None:
    mass_email = fresh_mass_email(3000)
    sink.received.clear()
    sink.delay = 0.005
    for _ in range(kills):
        before = len(sink.received)
        worker = start_sender(sink.port, LEASE_SECONDS, subprocess.DEVNULL)
        while len(sink.received) < before + 150 and worker.poll() is None:
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        time.sleep(LEASE_SECONDS + 0.5)  # a lease, if there is one, runs out
        with time_machine.travel(timezone.now() + PAST_THE_OLD_RULE):
            reconcile_stale()
    sink.delay = 0
    with time_machine.travel(timezone.now() + PAST_THE_OLD_RULE):
        tick()
    unknown = set(
        mass_email.queue_items.filter(status=Status.UNKNOWN).values_list(
            "email_address__address", flat=True
        )
    )
    received = set(sink.received)
    twice = sum(n - 1 for n in Counter(sink.received).values() if n > 1)
    print(
        f"3. {kills} SIGKILLs, 3,000 items: {statuses(mass_email)};"
        f" {len(sink.received)} received ({twice} duplicates); of {len(unknown)} unknown"
        f" {len(unknown & received)} were delivered, {len(unknown - received)} were not"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--only", type=int, choices=[1, 2, 3], help="one case")
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    sink = Sink()
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    set_outbound(max_per_hour=1_000_000, max_per_batch=None, spread_over_hour=False)
    try:
        cases = [slow_worker, stubborn_recipient, lambda s: killed_again_and_again(s, args.kills)]
        for number, case in enumerate(cases, 1):
            if args.only in (None, number):
                case(sink)
    finally:
        sink.controller.stop()


if __name__ == "__main__":
    main()
