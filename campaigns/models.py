"""Campaigns, email templates and the campaign log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

if TYPE_CHECKING:
    from massmail.models import QueueItem


class Campaign(models.Model):
    class Type(models.TextChoices):
        EMAIL = "email", "Email"
        NEWSLETTER = "newsletter", "Newsletter"
        INFORMATIONAL = "informational", "Informational Email"
        WEB = "web", "Web"
        TELEVISION = "television", "Television"
        RADIO = "radio", "Radio"
        MAIL = "mail", "Mail"

    class Status(models.TextChoices):
        PLANNING = "planning", "Planning"
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"
        COMPLETE = "complete", "Complete"

    # Types that can have mass emails; the others are tracked for budget only.
    MASS_EMAIL_TYPES = (Type.EMAIL, Type.NEWSLETTER, Type.INFORMATIONAL)

    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.EMAIL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNING)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    description = models.TextField(blank=True)
    target_lists = models.ManyToManyField(
        "targets.TargetList", blank=True, related_name="campaigns"
    )
    excluding_target_lists = models.ManyToManyField(
        "targets.TargetList", blank=True, related_name="excluding_campaigns"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.start_date and self.end_date and self.end_date < self.start_date:
            errors["end_date"] = "The end date cannot be before the start date."
        if self.pk and self.type_is_locked():
            stored_type = Campaign.objects.filter(pk=self.pk).values_list("type", flat=True)[0]
            if stored_type != self.type:
                errors["type"] = "The type cannot change once the campaign has a mass email."
        if errors:
            raise ValidationError(errors)

    def type_is_locked(self) -> bool:
        return self.pk is not None and self.mass_emails.exists()

    @property
    def allows_mass_email(self) -> bool:
        return self.type in self.MASS_EMAIL_TYPES

    @property
    def is_informational(self) -> bool:
        return self.type == self.Type.INFORMATIONAL


class EmailTemplate(models.Model):
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=400)
    body_html = models.TextField("HTML body")
    body_text = models.TextField(
        "text body", blank=True, help_text="Left empty, a text version is made from the HTML."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CampaignLogRecordManager(models.Manager["CampaignLogRecord"]):
    def write(self, records: Iterable[CampaignLogRecord]) -> None:
        """Insert entries with ON CONFLICT DO NOTHING against the log's once-per-item
        constraints: a concurrent writer (a second worker, a double click, the mail
        client's one-click POST) may have inserted the same entry first."""
        self.bulk_create(list(records), ignore_conflicts=True)


class CampaignLogRecord(models.Model):
    """One entry of a campaign's log. Every entry about a queue item is made by
    `of_item()` (ORM) or inserted by the statement `insert_sql()` builds (SQL): both
    write the columns of `ITEM_COLUMNS`, the one list of what such an entry holds."""

    class Action(models.TextChoices):
        SENT = "sent", "Sent"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        OPTED_OUT = "opted_out", "Opted Out"
        BOUNCED = "bounced", "Bounced"
        OPTED_IN = "opted_in", "Opted In"
        LEAD_CREATED = "lead_created", "Lead Created"

    class Bounce(models.TextChoices):
        HARD = "hard", "Hard"
        SOFT = "soft", "Soft"

    # The log is written on the request path of every tracked click and open. Its
    # foreign keys are kept by Django's on_delete, not by database constraints: each
    # constraint check locks the referenced row (FOR KEY SHARE), and every hit of a
    # campaign references the same campaign, mass email and tracking URL rows, so
    # under load those checks cost the click endpoint about a fifth of its throughput.
    action = models.CharField(max_length=20, choices=Action.choices)
    action_date = models.DateTimeField(default=timezone.now)
    # Only the indexes something reads: every log row written (two per first click)
    # updates each of them. The campaign's own index is covered by the composites
    # below; the target's content type, the tracking URL and the template are only
    # looked up when one of those is deleted, a rare admin action that may scan.
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="log_records",
        db_constraint=False,
        db_index=False,
    )
    mass_email = models.ForeignKey(
        "massmail.MassEmail",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    queue_item = models.ForeignKey(
        "massmail.QueueItem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="log_records",
        db_constraint=False,
    )
    # The target (parent) record: a contact, lead, account, user or custom type.
    content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    object_id = models.BigIntegerField(null=True, blank=True)
    target = GenericForeignKey("content_type", "object_id")
    # The object: the tracking URL clicked, or the template sent.
    tracking_url = models.ForeignKey(
        "tracking.TrackingUrl",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    email_template = models.ForeignKey(
        EmailTemplate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    email_address = models.CharField(max_length=254, blank=True)
    bounce_type = models.CharField(max_length=4, choices=Bounce.choices, blank=True)
    is_test = models.BooleanField(default=False)

    objects = CampaignLogRecordManager()

    ITEM_COLUMNS = (
        "action",
        "action_date",
        "campaign_id",
        "mass_email_id",
        "queue_item_id",
        "content_type_id",
        "object_id",
        "tracking_url_id",
        "email_template_id",
        "email_address",
        "bounce_type",
        "is_test",
    )

    class Meta:
        verbose_name = "campaign log record"
        ordering = ["-action_date", "-id"]
        indexes = [
            models.Index(fields=["campaign", "action", "action_date"]),
            models.Index(fields=["campaign", "-action_date"]),
            # A record's campaign history on its admin page (targets.history).
            models.Index(
                fields=["content_type", "object_id", "-action_date"], name="log_by_target"
            ),
            # Statistics read only non-test entries: counts, the time series, clicked
            # items and clicks per link come from this index alone (index-only scans).
            models.Index(
                fields=["campaign", "action", "bounce_type", "action_date"],
                include=["queue_item", "tracking_url"],
                condition=Q(is_test=False),
                name="log_statistics",
            ),
        ]
        constraints = [
            # The engine and the endpoints insert with ON CONFLICT DO NOTHING against
            # these: Sent, Opened and Opted Out once per queue item, Clicked once per
            # (queue item, tracking URL), a bounce once per (queue item, kind).
            models.UniqueConstraint(
                fields=["queue_item", "action"],
                condition=Q(action__in=["sent", "opened", "opted_out"]),
                name="log_once_per_item",
            ),
            models.UniqueConstraint(
                fields=["queue_item", "tracking_url"],
                condition=Q(action="clicked"),
                name="log_click_once_per_item_url",
            ),
            models.UniqueConstraint(
                fields=["queue_item", "bounce_type"],
                condition=Q(action="bounced"),
                name="log_bounce_once_per_item_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.email_address}"

    @classmethod
    def of_item(
        cls,
        item: QueueItem,
        action: str,
        *,
        at: datetime | None = None,
        bounce_type: str = "",
        tracking_url_id: int | None = None,
        email_template_id: int | None = None,
    ) -> CampaignLogRecord:
        """The entry `action` about a queue item (its campaign, mass email, target and address)."""
        mass_email = item.mass_email
        values = {
            "action": action,
            "action_date": at or timezone.now(),
            "campaign_id": mass_email.campaign_id,
            "mass_email_id": mass_email.pk,
            "queue_item_id": item.pk,
            "content_type_id": item.content_type_id,
            "object_id": item.object_id,
            "tracking_url_id": tracking_url_id,
            "email_template_id": email_template_id,
            "email_address": item.email_address.address,
            "bounce_type": bounce_type,
            "is_test": item.is_test,
        }
        return cls(**values)

    @classmethod
    def insert_sql(cls, expressions: Mapping[str, str]) -> str:
        """`INSERT INTO <log> (ITEM_COLUMNS) SELECT <one SQL expression per column>`, for
        a statement to finish with its FROM and ON CONFLICT DO NOTHING. A missing or an
        unknown column is an error here, not a silently empty one in the log."""
        if set(expressions) != set(cls.ITEM_COLUMNS):
            wrong = set(expressions) ^ set(cls.ITEM_COLUMNS)
            raise ValueError(f"log columns missing or unknown: {sorted(wrong)}")
        columns = ", ".join(cls.ITEM_COLUMNS)
        values = ", ".join(expressions[column] for column in cls.ITEM_COLUMNS)
        return f"INSERT INTO {cls._meta.db_table} ({columns}) SELECT {values}"


class Sequence(models.Model):
    """A drip sequence: emails sent to each member of a list at set times after joining.

    Each step sends through a mass email of its own (made with the step), so the
    engine's claim, caps, opt-out and bounce rules, exactly-once and the campaign
    log apply unchanged; campaigns.sequences queues the due steps set-based.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sequences")
    name = models.CharField(max_length=200)
    target_list = models.ForeignKey(
        "targets.TargetList",
        on_delete=models.PROTECT,
        related_name="sequences",
        help_text="Joining this list (by form, import or admin) enrols the person.",
    )
    active = models.BooleanField(default=True)
    enrols_from = models.DateTimeField(
        default=timezone.now,
        help_text="Members who joined the list from this time on are enrolled; "
        "set it earlier to enrol existing members too.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SequenceStep(models.Model):
    class DelayFrom(models.TextChoices):
        JOINING = "joining", "after joining"
        PREVIOUS = "previous", "after the previous step"

    class Condition(models.TextChoices):
        ALWAYS = "always", "always"
        OPENED = "opened", "opened the previous step"
        CLICKED = "clicked", "clicked in the previous step"
        NOT_OPENED = "not_opened", "did not open the previous step"
        NOT_CLICKED = "not_clicked", "did not click in the previous step"

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(help_text="Steps go in this order.")
    email_template = models.ForeignKey(EmailTemplate, on_delete=models.PROTECT, related_name="+")
    delay = models.DurationField(
        default=timedelta(0), help_text="e.g. 0 for a welcome email, 2 days 00:00:00"
    )
    delay_from = models.CharField(
        max_length=10, choices=DelayFrom.choices, default=DelayFrom.PREVIOUS
    )
    condition = models.CharField(max_length=12, choices=Condition.choices, default="always")
    # The step's sending: its queue items, log entries and statistics.
    mass_email = models.OneToOneField(
        "massmail.MassEmail",
        null=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="sequence_step",
    )
    # People whose condition did not hold when the step was due: they went on without it.
    skipped_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["sequence", "position"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "position"], name="one_step_per_position")
        ]

    def __str__(self) -> str:
        return f"{self.sequence}: step {self.position}"

    def clean(self) -> None:
        from massmail.placeholders import validate_template  # massmail builds on campaigns

        if self.email_template_id and self.sequence_id:
            errors = validate_template(self.email_template, self.sequence.campaign)
            if errors:
                raise ValidationError({"email_template": errors})


class Enrolment(models.Model):
    """One person's way through a sequence: the next step, and since when its delay counts."""

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrolments")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.BigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    joined_at = models.DateTimeField()
    # None once every step is done (or the person stopped).
    next_step = models.ForeignKey(
        SequenceStep, null=True, on_delete=models.SET_NULL, related_name="waiting"
    )
    # The next step is due at delay_from_at + its delay: due means delay_from_at <= now - delay,
    # a comparison with one parameter per step that an index serves on every database.
    delay_from_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sequence", "content_type", "object_id"], name="enrolled_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_step", "delay_from_at"],
                condition=Q(next_step__isnull=False, stopped_at__isnull=True),
                name="enrolment_waiting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.content_type.model} #{self.object_id} in {self.sequence}"
