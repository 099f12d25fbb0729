"""Group email accounts: the mailboxes bounces return to, optionally the SMTP for mass email."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from bounces.passwords import EncryptedPasswordField
from bounces.reasons import Reason, Verdict


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
    # Encrypted at rest (bounces/passwords.py); plain text only in Python.
    imap_password = EncryptedPasswordField("IMAP password", blank=True)
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
    smtp_password = EncryptedPasswordField("SMTP password", blank=True)

    # Poller state, shown in the admin.
    uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    # While set and in the future, one poller has the mailbox: ticks may overlap.
    poll_lease_until = models.DateTimeField(null=True, blank=True, editable=False)

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


class BounceEvent(models.Model):
    """One bounce, rejection or complaint for one address, from any source.

    The soft-bounce threshold counts these rows (not log rows, which exist once per
    queue item), and (source, event_key, address) makes every source idempotent.
    Rows without an email address are bounces for addresses this site does not know:
    kept for an administrator to review rather than dropped.
    """

    Verdict = Verdict
    Reason = Reason

    source = models.CharField(max_length=50, help_text="imap, smtp, esp:<name>")
    event_key = models.CharField(max_length=255, blank=True)
    address = models.CharField(max_length=254, help_text="As the bounce names it.")
    email_address = models.ForeignKey(
        "targets.EmailAddress",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="bounce_events",
    )
    queue_item = models.ForeignKey(
        "massmail.QueueItem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bounce_events",
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    status = models.CharField(max_length=20, blank=True)
    reason = models.CharField(max_length=100, blank=True, choices=Reason.choices)
    diagnostic = models.TextField(blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    reviewed = models.BooleanField(default=False)

    class Meta:
        verbose_name = "bounce event"
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["email_address", "verdict", "occurred_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "event_key", "address"],
                condition=~Q(event_key=""),
                name="bounce_event_once_per_source_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_verdict_display()} {self.address}"


class UnmatchedBounceManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(email_address__isnull=True)


class UnmatchedBounce(BounceEvent):
    """Bounces naming an address nobody here has: the admin's review list."""

    objects = UnmatchedBounceManager()

    class Meta:
        proxy = True
        verbose_name = "unmatched bounce"


class HeldReport(models.Model):
    """A bounce or complaint naming a known address that no message of ours vouches for.

    Anyone can mail the bounce address, so a report is applied only when it names a
    message we sent (a valid VERP token, our X-Queue-Item-Id or Message-ID). Others
    wait here until an administrator applies them; they change nothing on their own.
    """

    source = models.CharField(max_length=50)
    event_key = models.CharField(max_length=255, blank=True)
    address = models.CharField(max_length=254, help_text="As the report names it.")
    email_address = models.ForeignKey(
        "targets.EmailAddress", on_delete=models.CASCADE, related_name="held_reports"
    )
    verdict = models.CharField(max_length=10, choices=BounceEvent.Verdict.choices)
    status = models.CharField(max_length=20, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    diagnostic = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "held report"
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "event_key", "address"],
                condition=~Q(event_key=""),
                name="held_report_once_per_source_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_verdict_display()} {self.address} (held)"


class ProcessedMessage(models.Model):
    """A message the poller has read from a mailbox, so it is never read twice."""

    class Outcome(models.TextChoices):
        BOUNCE = "bounce", "Bounce or complaint"
        NOT_BOUNCE = "not_bounce", "Not a bounce (left in place)"
        # Not read within the classifier's limits or time budget: filed away, not retried.
        UNREADABLE = "unreadable", "Unreadable (skipped)"
        ERROR = "error", "Failed to process"

    account = models.ForeignKey(
        GroupEmailAccount, on_delete=models.CASCADE, related_name="processed_messages"
    )
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    message_id = models.CharField("Message-ID", max_length=255, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    error = models.TextField(blank=True)
    # Kept only when processing failed, so the message can be looked at and retried.
    raw = models.BinaryField(blank=True, editable=False)
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "processed mailbox message"
        ordering = ["-processed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "uidvalidity", "uid"], name="processed_message_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} UID {self.uid}: {self.get_outcome_display()}"
