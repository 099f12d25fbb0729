"""Re-encrypt the group email accounts' mailbox passwords under the first key.

Rotation: put the new key first in MAILBOX_PASSWORD_KEYS (keep the old one after it),
run this, then drop the old key.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from bounces.passwords import reencrypt_all


class Command(BaseCommand):
    help = "Re-encrypt every stored IMAP and SMTP password with the first of MAILBOX_PASSWORD_KEYS."

    def handle(self, *args, **options) -> None:
        count = reencrypt_all()
        self.stdout.write(
            f"Re-encrypted the passwords of {count} group email account(s) with the first key."
        )
