"""Apply the burst rules to recent hits now (what the beat task does every minute)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from tracking.bursts import BURST_LOOKBACK, reclassify_bursts


class Command(BaseCommand):
    help = "Mark as machine the person hits that turn out to belong to a burst."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--minutes",
            type=int,
            default=int(BURST_LOOKBACK.total_seconds() // 60),
            help="How far back to look (default: %(default)s).",
        )

    def handle(self, *args, minutes: int, **options) -> None:
        changed = reclassify_bursts(lookback=timedelta(minutes=minutes))
        self.stdout.write(f"{changed} hit(s) reclassified as machine.")
