"""Mass emails, their queue, and the outbound settings that govern sending."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q

from massmail.placeholders import validate_mass_email


class OutboundSettings(models.Model):
    """One row (pk=1), edited by administrators: Administration > Outbound Emails."""

    max_per_hour = models.PositiveIntegerField(
        "max emails per hour", default=100, validators=[MinValueValidator(1)]
    )
    max_per_batch = models.PositiveIntegerField(
        "max emails per batch",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Empty: no cap beyond the hourly one.",
    )
    spread_over_hour = models.BooleanField(
        "spread the hourly cap over the hour",
        default=False,
        help_text="Each tick sends only its share of the hourly cap (kind to reputation).",
    )
    max_attempts = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1)])
    disable_mandatory_opt_out_link = models.BooleanField(
        default=False,
        help_text="Also drops the List-Unsubscribe headers.",
    )
    open_tracking = models.BooleanField("email open tracking", default=False)
    use_verp = models.BooleanField("use VERP", default=False)
    site_url = models.URLField(
        "site URL for links",
        blank=True,
        help_text="The public URL of this site used in links; empty: the SITE_URL setting.",
    )
    from_address = models.EmailField(
        "default from address", blank=True, help_text="Empty: DEFAULT_FROM_EMAIL."
    )
    from_name = models.CharField("default from name", max_length=200, blank=True)
    bounce_address = models.EmailField(
        blank=True,
        help_text="Envelope sender (Return-Path); with VERP it carries a token per message. "
        "Empty: the from address.",
    )
    list_id = models.CharField(
        "List-Id", max_length=200, blank=True, help_text="e.g. Acme Newsletter <news.example.com>"
    )
    soft_bounce_threshold = models.PositiveIntegerField(
        default=3,
        help_text=(
            "Messages that bounced soft within the window that make an address invalid"
            " (several delay notices about one message count once; 0: never)."
        ),
    )
    soft_bounce_window_days = models.PositiveIntegerField(default=30)
    recently_mailed_days = models.PositiveIntegerField(
        "warn about recipients mailed in the last (days)",
        default=7,
        help_text="The pre-send checks count recipients another mass email of the same "
        "campaign sent to within this many days (0: no such check).",
    )
    truncate_ip = models.BooleanField(
        "truncate IP addresses of hits",
        default=True,
        help_text="Keep only the network part (/24, /48) of recipients' IP addresses.",
    )

    class Meta:
        verbose_name = "outbound email settings"
        verbose_name_plural = "outbound email settings"

    def __str__(self) -> str:
        return "Outbound email settings"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> OutboundSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    @property
    def effective_site_url(self) -> str:
        return (self.site_url or settings.SITE_URL).rstrip("/")


class MassEmailQuerySet(models.QuerySet):
    def complete_finished(self) -> int:
        """Those In Process with nothing pending or being sent become Complete.

        Not a variant of an A/B test still testing: the winner may yet get the rest, so
        it completes (and tells webhooks it finished, once) only after the decision."""
        open_items = QueueItem.objects.filter(
            mass_email=models.OuterRef("pk"),
            status__in=[QueueItem.Status.PENDING, QueueItem.Status.SENDING],
            is_test=False,
        )
        return (
            self.filter(status=MassEmail.Status.IN_PROCESS)
            .exclude(split_variant__split_test__state=SplitTest.State.TESTING)
            .exclude(models.Exists(open_items))
            .update(status=MassEmail.Status.COMPLETE)
        )


class MassEmail(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING = "pending", "Pending"
        IN_PROCESS = "in_process", "In Process"
        PAUSED = "paused", "Paused"
        COMPLETE = "complete", "Complete"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"
        # An A/B test holds it: the parent keeps the rest of its queue until the
        # winner is picked, a variant waits for its share (massmail/splittests.py).
        TESTING = "testing", "A/B testing"

    CANCELABLE = (Status.DRAFT, Status.PENDING, Status.IN_PROCESS, Status.PAUSED, Status.TESTING)

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="mass_emails"
    )
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    start_at = models.DateTimeField("date start")
    email_template = models.ForeignKey(
        "campaigns.EmailTemplate", on_delete=models.PROTECT, related_name="mass_emails"
    )
    from_address = models.EmailField(blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    reply_to_address = models.EmailField(blank=True)
    reply_to_name = models.CharField(max_length=200, blank=True)
    opt_out_entirely = models.BooleanField(
        default=False,
        help_text="An opt-out stops all marketing email to the address, not only these lists.",
    )
    target_lists = models.ManyToManyField(
        "targets.TargetList",
        blank=True,
        related_name="mass_emails",
        help_text="Empty: the campaign's target lists.",
    )
    excluding_target_lists = models.ManyToManyField(
        "targets.TargetList", blank=True, related_name="excluding_mass_emails"
    )
    group_email_account = models.ForeignKey(
        "bounces.GroupEmailAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mass_emails",
    )
    queue_built_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MassEmailQuerySet.as_manager()

    class Meta:
        verbose_name = "mass email"
        ordering = ["-start_at"]
        indexes = [models.Index(fields=["status", "start_at"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.campaign_id and not self.campaign.allows_mass_email:
            raise ValidationError(
                {
                    "campaign": "Mass emails are only for Email, Newsletter and "
                    "Informational Email campaigns."
                }
            )
        if self.campaign_id and self.email_template_id:
            # A placeholder that cannot render is refused now, not found in sent mail.
            errors = validate_mass_email(self)
            if errors:
                raise ValidationError({"email_template": errors})

    def can_send_test(self) -> bool:
        return self.status != self.Status.CANCELED

    def can_pause(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.IN_PROCESS)

    def can_resume(self) -> bool:
        return self.status == self.Status.PAUSED

    def can_cancel(self) -> bool:
        return self.status in self.CANCELABLE

    def can_schedule(self) -> bool:
        """The admin's button moves a draft; the API may also move a pending start."""
        return self.status == self.Status.DRAFT

    # -- the lifecycle actions: each a conditional UPDATE, so two clicks act once

    def schedule(self, start_at: datetime | None = None) -> bool:
        """A draft becomes Pending: its queue is built when its start comes. With a
        start_at, a pending mass email not yet started may also be moved to it."""
        if start_at is None:
            return self._move(self.Status.PENDING, [self.Status.DRAFT])
        allowed = [self.Status.DRAFT, self.Status.PENDING]
        moved = MassEmail.objects.filter(pk=self.pk, status__in=allowed).update(
            status=self.Status.PENDING, start_at=start_at
        )
        if moved:
            self.status, self.start_at = self.Status.PENDING, start_at
        return bool(moved)

    def pause(self) -> bool:
        """A paused mass email sends nothing and keeps its queue."""
        return self._move(self.Status.PAUSED, [self.Status.PENDING, self.Status.IN_PROCESS])

    def resume(self) -> bool:
        """Back to In Process, or Pending when its queue was never built."""
        target = self.Status.IN_PROCESS if self.queue_built_at else self.Status.PENDING
        return self._move(target, [self.Status.PAUSED])

    def cancel(self) -> bool:
        """Canceled for good: its pending items are canceled (items being sent finish)."""
        with transaction.atomic():
            moved = self._move(self.Status.CANCELED, list(self.CANCELABLE))
            if moved:
                self.queue_items.filter(status=QueueItem.Status.PENDING, is_test=False).update(
                    status=QueueItem.Status.CANCELED
                )
        return moved

    def _move(self, status: str, allowed: list[str]) -> bool:
        moved = MassEmail.objects.filter(pk=self.pk, status__in=allowed).update(status=status)
        if moved:
            self.status = status
        return bool(moved)


class QueueItemQuerySet(models.QuerySet):
    def retry(self) -> int:
        """Put Delivery unknown or Failed items back to Pending (the admin's "Retry"),
        except the unknown ones known to be delivered: those are Sent (massmail.retry)."""
        from massmail.retry import settle_delivered  # it needs the sending engine

        Status = QueueItem.Status
        settle_delivered(self)
        retried = self.filter(status__in=[Status.UNKNOWN, Status.FAILED], is_test=False).update(
            status=Status.PENDING,
            attempt_count=0,
            next_attempt_at=None,
            claimed_at=None,
            claimed_by="",
            last_error="",
        )
        # A mass email completed meanwhile goes back to sending them.
        MassEmail.objects.filter(status=MassEmail.Status.COMPLETE).filter(
            Exists(QueueItem.objects.filter(mass_email=OuterRef("pk"), status=Status.PENDING))
        ).update(status=MassEmail.Status.IN_PROCESS)
        return retried


class QueueItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # A worker died between claiming and recording the outcome: the SMTP
        # server may or may not have the message. Never resent silently.
        UNKNOWN = "unknown", "Delivery unknown"
        CANCELED = "canceled", "Canceled"

    # Public, non-sequential id used in links, headers and bounces.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Queue items are written a million at a time by one INSERT ... SELECT: a database
    # foreign key check per row (a row lock on the referenced row) cost more than the
    # rest of the build. Django's on_delete (CASCADE, SET_NULL, PROTECT) still applies;
    # the (mass_email, status) index serves lookups by mass email.
    mass_email = models.ForeignKey(
        MassEmail,
        on_delete=models.CASCADE,
        related_name="queue_items",
        db_index=False,
        db_constraint=False,
    )
    content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    object_id = models.BigIntegerField(null=True, blank=True)
    target = GenericForeignKey("content_type", "object_id")
    email_address = models.ForeignKey(
        "targets.EmailAddress",
        on_delete=models.PROTECT,
        related_name="queue_items",
        db_index=False,  # lookups go through (mass_email, email_address)
        db_constraint=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField("Message-ID", max_length=255, blank=True)
    is_test = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = QueueItemQuerySet.as_manager()

    class Meta:
        verbose_name = "queue item"
        indexes = [
            # Claiming: pending items of a mass email in id order, without walking
            # the rows already sent.
            models.Index(
                fields=["mass_email", "id"],
                condition=Q(status="pending"),
                name="queue_item_pending",
            ),
            # The hourly cap counts what went out in the last 60 minutes.
            # Partial: pending rows (most of a fresh queue) stay out of these two.
            models.Index(
                fields=["sent_at"], condition=Q(sent_at__isnull=False), name="queue_item_sent_at"
            ),
            models.Index(
                fields=["status", "claimed_at"],
                condition=Q(status__in=["sending", "unknown"]),
                name="queue_item_status_claimed",
            ),
            models.Index(fields=["mass_email", "status"], name="queue_item_mass_email_status"),
            # Bounces without X-Queue-Item-Id or VERP are matched by Message-ID.
            models.Index(
                fields=["message_id"], condition=~Q(message_id=""), name="queue_item_message_id"
            ),
        ]
        constraints = [
            # One message per address per mass email, whatever happens.
            models.UniqueConstraint(
                fields=["mass_email", "email_address"],
                condition=Q(is_test=False),
                name="queue_item_one_per_address",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email_address} ({self.get_status_display()})"


class SplitTest(models.Model):
    """An A/B test of a mass email (the parent): its variants are mass emails themselves.

    When the parent's queue is built, a reproducible random share of it moves evenly to
    the variants' mass emails, which the engine sends; the rest waits on the parent.
    When the wait is over the winner's mass email gets the rest (massmail/splittests.py).
    """

    class Metric(models.TextChoices):
        OPENS = "opens", "Opens by people"
        CLICKS = "clicks", "Clicks by people"
        MANUAL = "manual", "Manual pick"

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting for the queue"
        TESTING = "testing", "Testing"
        DECIDED = "decided", "Winner picked"

    parent = models.OneToOneField(MassEmail, on_delete=models.CASCADE, related_name="split_test")
    test_percent = models.PositiveSmallIntegerField(
        "test share (%)",
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Of the queue, split evenly among the variants; the rest gets the winner.",
    )
    wait = models.DurationField(
        default=timedelta(hours=4), help_text="From the split to the pick of the winner."
    )
    metric = models.CharField(max_length=10, choices=Metric.choices, default=Metric.CLICKS)
    min_events = models.PositiveIntegerField(
        "fewest events",
        default=1,
        help_text="The best variant needs at least this many people who opened or clicked;"
        " fewer, or a tie, and the tie rule picks.",
    )
    tie_variant = models.CharField(
        "on a tie or too few events keep variant",
        max_length=1,
        default="A",
        help_text="Never a random pick: this variant wins a tie or a test with too few events.",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    split_at = models.DateTimeField(null=True, blank=True, editable=False)
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    winner = models.CharField(max_length=1, blank=True, editable=False)
    decision = models.TextField(blank=True, editable=False, help_text="Why the winner won.")

    class Meta:
        verbose_name = "A/B test"

    def __str__(self) -> str:
        return f"A/B test of {self.parent}"

    @property
    def decide_at(self) -> datetime | None:
        return self.split_at + self.wait if self.split_at else None


class SplitVariant(models.Model):
    split_test = models.ForeignKey(SplitTest, on_delete=models.CASCADE, related_name="variants")
    letter = models.CharField(max_length=1)
    mass_email = models.OneToOneField(
        MassEmail, on_delete=models.CASCADE, related_name="split_variant"
    )
    # The figures the winner was picked by (the winner's own grow afterwards).
    decided_sent = models.PositiveIntegerField(null=True, blank=True, editable=False)
    decided_events = models.PositiveIntegerField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "A/B test variant"
        ordering = ["letter"]
        constraints = [
            models.UniqueConstraint(fields=["split_test", "letter"], name="split_variant_letter")
        ]

    def __str__(self) -> str:
        return f"Variant {self.letter}"


class JobRun(models.Model):
    """When a scheduled job last ran, written by the job itself, whatever the broker:
    the pages warn when the send tick or the bounce poller is overdue."""

    task = models.CharField(max_length=200, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "job run"

    def __str__(self) -> str:
        return f"{self.task} at {self.started_at:%Y-%m-%d %H:%M}"


class SenderLease(models.Model):
    """A sending worker is alive while its lease runs (massmail.sending renews it as it
    sends); only an expired lease's claims are reconciled. `offered_*` is the last item,
    in sending order, that the holder may have handed to SMTP: the holder moves it
    forward before it sends further, so items after it were never offered."""

    holder = models.CharField(max_length=200, unique=True)
    expires_at = models.DateTimeField()
    offered_mass_email_id = models.BigIntegerField(null=True, blank=True)
    offered_item_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "sender lease"

    def __str__(self) -> str:
        return self.holder


class DomainThrottle(models.Model):
    """Caps per receiving domain (e.g. gmail.com), besides the global hourly cap."""

    domain = models.CharField(
        max_length=255, unique=True, help_text="The part after @, e.g. gmail.com."
    )
    per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty: no cap."
    )
    per_hour = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty: no cap."
    )

    class Meta:
        verbose_name = "receiving domain throttle"
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    def save(self, *args, **kwargs) -> None:
        self.domain = self.domain.strip().lower()
        super().save(*args, **kwargs)


class SendingPause(models.Model):
    """Sending towards a receiving domain, or through an SMTP server, waits until
    `paused_until` because the server said so (421, 4.7.28, connection refused).

    A receiving domain then ramps up again until `ramp_until`: one connection at a time
    (one worker's portion), at a per-minute rate that doubles every minute."""

    class Kind(models.TextChoices):
        DOMAIN = "domain", "Receiving domain"
        SERVER = "server", "SMTP server"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(max_length=255, help_text="The domain, or host:port of the server.")
    paused_until = models.DateTimeField()
    ramp_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A receiving domain, after its pause: one connection and a growing rate.",
    )
    since = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "sending pause"
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="sending_pause_key")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.key} until {self.paused_until:%H:%M}"
