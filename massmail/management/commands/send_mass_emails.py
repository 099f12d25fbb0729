"""The scheduled tick for cron users and tests: `python manage.py send_mass_emails`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from massmail import sending
from massmail.jobs import SEND_TICK, recorded_run


class Command(BaseCommand):
    help = "Build the queues of due mass emails and send what the hourly cap allows."

    def handle(self, *args, **options) -> None:
        with recorded_run(SEND_TICK):
            result = sending.tick()
        self.stdout.write(
            f"built {len(result.built)} queue(s); sent {result.sent}, failed {result.failed},"
            f" retrying {result.retrying}, unknown {result.unknown}, reconciled"
            f" {result.reconciled}, completed {result.completed}"
            + (f"; stopped: {result.stopped}" if result.stopped else "")
        )
