"""Mailbox passwords (IMAP and SMTP of group email accounts), encrypted at rest.

Fernet tokens under the keys of MAILBOX_PASSWORD_KEYS: the first key encrypts, every
key decrypts (MultiFernet), so keys rotate by putting a new one first, running
`manage.py rotate_mailbox_passwords`, then dropping the old one. The database
alone, or a dump of it, gives no password away.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("MAILBOX_PASSWORD_KEYS is empty: mailbox passwords need a key.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def cipher() -> MultiFernet:
    return _cipher(tuple(settings.MAILBOX_PASSWORD_KEYS))


def encrypt(password: str) -> str:
    return cipher().encrypt(password.encode()).decode() if password else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        # Never the token or anything derived from it in the message.
        raise ImproperlyConfigured(
            "A mailbox password cannot be decrypted: none of MAILBOX_PASSWORD_KEYS is the "
            "key it was encrypted with."
        ) from None


class EncryptedPasswordField(models.TextField):
    """Plain text in Python, a Fernet token in the database."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value


def reencrypt_all() -> int:
    """Encrypt every stored mailbox password under the first key; the accounts done."""
    from django.db import transaction

    from bounces.models import GroupEmailAccount

    with transaction.atomic():
        accounts = GroupEmailAccount.objects.select_for_update()
        rows = list(accounts.values_list("pk", "imap_password", "smtp_password"))
        for pk, imap, smtp in rows:  # decrypted by any key, written under the first
            accounts.filter(pk=pk).update(imap_password=imap, smtp_password=smtp)
    return len(rows)
