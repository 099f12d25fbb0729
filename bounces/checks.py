"""System checks: settings the bounce pipeline needs to work as configured."""

from __future__ import annotations

from anymail.utils import get_anymail_setting
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def webhook_secret_for_esp(app_configs=None, **kwargs) -> list[Warning]:
    """Sending through an ESP without a webhook secret: its bounces would be refused."""
    if not str(getattr(settings, "EMAIL_BACKEND", "")).startswith("anymail."):
        return []
    if get_anymail_setting("webhook_secret", default=None):
        return []
    return [
        Warning(
            "Mail goes through an ESP but ANYMAIL['WEBHOOK_SECRET'] is not set: its bounce "
            "and complaint webhooks will be refused, so bounced addresses stay mailable.",
            hint="Set ANYMAIL_WEBHOOK_SECRET=user:pass and use "
            "https://user:pass@<site>/webhooks/anymail/<esp>/tracking/ at the provider.",
            id="bounces.W001",
        )
    ]


@register()
def mailbox_password_keys(app_configs=None, **kwargs) -> list[Error]:
    """Mailbox passwords are stored encrypted: production must name the key(s)."""
    keys = list(getattr(settings, "MAILBOX_PASSWORD_KEYS", []))
    hint = (
        'Set MAILBOX_PASSWORD_KEYS to a key made by python -c "from cryptography.fernet '
        'import Fernet; print(Fernet.generate_key().decode())" (comma-separated to rotate: '
        "the first encrypts)."
    )
    if not keys:
        return [
            Error(
                "MAILBOX_PASSWORD_KEYS is not set: the IMAP and SMTP passwords of group email "
                "accounts cannot be encrypted or read.",
                hint=hint,
                id="bounces.E001",
            )
        ]
    bad = [str(number) for number, key in enumerate(keys, 1) if not _is_fernet_key(key)]
    if not bad:
        return []
    return [
        Error(
            f"MAILBOX_PASSWORD_KEYS: key number {', '.join(bad)} is not a Fernet key "
            "(32 bytes, URL-safe base64).",
            hint=hint,
            id="bounces.E002",
        )
    ]


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode())
    except ValueError:
        return False
    return True
