"""Group email accounts: the mailboxes bounces return to, optionally the SMTP for mass email."""

from __future__ import annotations

from django.db import models


class Security(models.TextChoices):
    TLS = "tls", "TLS"
    STARTTLS = "starttls", "STARTTLS"
    NONE = "none", "None"


class GroupEmailAccount(models.Model):
    class AfterProcessing(models.TextChoices):
        MARK_SEEN = "seen", "Flag as seen"
        MOVE = "move", "Move to folder"

    name = models.CharField(max_length=200)
    email_address = models.EmailField(help_text="The mailbox's address, e.g. bounces@example.com.")
    from_name = models.CharField(max_length=200, blank=True)
    reply_to_address = models.EmailField(blank=True)
    reply_to_name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)

    imap_host = models.CharField("IMAP host", max_length=255, blank=True)
    imap_port = models.PositiveIntegerField("IMAP port", default=993)
    imap_security = models.CharField(
        "IMAP security", max_length=10, choices=Security.choices, default=Security.TLS
    )
    imap_username = models.CharField("IMAP username", max_length=255, blank=True)
    imap_password = models.CharField("IMAP password", max_length=255, blank=True)
    imap_folder = models.CharField("IMAP folder", max_length=255, default="INBOX")
    handles_bounces = models.BooleanField(default=True)
    after_processing = models.CharField(
        max_length=10, choices=AfterProcessing.choices, default=AfterProcessing.MARK_SEEN
    )
    processed_folder = models.CharField(
        max_length=255, blank=True, help_text="Where processed bounces are moved to."
    )

    use_smtp_for_mass_email = models.BooleanField("use this SMTP for mass email", default=False)
    smtp_host = models.CharField("SMTP host", max_length=255, blank=True)
    smtp_port = models.PositiveIntegerField("SMTP port", default=587)
    smtp_security = models.CharField(
        "SMTP security", max_length=10, choices=Security.choices, default=Security.STARTTLS
    )
    smtp_username = models.CharField("SMTP username", max_length=255, blank=True)
    smtp_password = models.CharField("SMTP password", max_length=255, blank=True)

    # Poller state, shown in the admin.
    uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "group email account"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email_address}>"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        if self.handles_bounces and not self.imap_host:
            errors["imap_host"] = "An account that handles bounces needs an IMAP host."
        if self.use_smtp_for_mass_email and not self.smtp_host:
            errors["smtp_host"] = "Sending mass email through this account needs an SMTP host."
        if self.after_processing == self.AfterProcessing.MOVE and not self.processed_folder:
            errors["processed_folder"] = "Name the folder processed bounces are moved to."
        if errors:
            raise ValidationError(errors)
