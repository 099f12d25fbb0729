"""Read bounces from the group email accounts' mailboxes now (what the beat task does)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from bounces.imap import accounts_to_poll, poll_account


class Command(BaseCommand):
    help = "Read bounces from every active group email account that handles bounces."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--account", type=int, action="append", help="Only this account id (repeatable)."
        )

    def handle(self, *args, account: list[int] | None = None, **options) -> None:
        accounts = accounts_to_poll()
        if account:
            accounts = accounts.filter(pk__in=account)
        results = [poll_account(a) for a in accounts]
        if not results:
            self.stdout.write("No active group email account handles bounces.")
        for result in results:
            style = self.style.ERROR if result.error else self.style.SUCCESS
            self.stdout.write(style(str(result)))
            for failure in result.failures:
                self.stdout.write(self.style.WARNING(f"  {failure}"))
        failed = [r for r in results if r.error]
        if failed:
            raise CommandError(f"{len(failed)} mailbox(es) could not be read.")
