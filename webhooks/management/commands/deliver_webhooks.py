from django.core.management.base import BaseCommand

from webhooks.delivery import deliver_due


class Command(BaseCommand):
    help = "Deliver pending webhook events to every due endpoint (what the scheduled job runs)."

    def handle(self, *args, **options) -> None:
        result = deliver_due()
        self.stdout.write(
            f"delivered {result.delivered} events in {result.batches} batches,"
            f" {result.failures} endpoints failed"
        )
