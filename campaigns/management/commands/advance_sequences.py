"""The sequences' scheduled job for cron users and tests: `python manage.py advance_sequences`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from campaigns import sequences


class Command(BaseCommand):
    help = "Enrol new list members in drip sequences and queue the steps that are due."

    def handle(self, *args, **options) -> None:
        result = sequences.advance()
        self.stdout.write(
            f"enrolled {result.enrolled}; queued {result.queued}, skipped {result.skipped},"
            f" stopped {result.stopped}, canceled {result.canceled}"
        )
