"""The scheduled tick for cron users and tests: `python manage.py send_mass_emails`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from massmail import sending
from massmail.jobs import SEND_TICK, recorded_run
from massmail.models import MassEmail
from massmail.presend import WARNING, presend_warnings


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
        self.warn_started(result.built)

    def warn_started(self, mass_email_ids: list[int]) -> None:
        """The pre-send warnings of the mass emails that started now, for whoever reads
        the cron mail or the log rather than the mass email's page."""
        started = MassEmail.objects.filter(pk__in=mass_email_ids).select_related(
            "campaign", "email_template"
        )
        for mass_email in started:
            for warning in presend_warnings(mass_email):
                if warning.level == WARNING:
                    self.stderr.write(
                        f'warning: mass email {mass_email.pk} "{mass_email.name}": '
                        f"{warning.message}"
                    )
