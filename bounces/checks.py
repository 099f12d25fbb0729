"""System checks: settings the bounce pipeline needs to work as configured."""

from __future__ import annotations

from anymail.utils import get_anymail_setting
from django.conf import settings
from django.core.checks import Warning, register


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
