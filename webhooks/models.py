"""Outgoing webhooks: endpoints an administrator registers, and the outbox of their events.

Events are not written by Python code: database triggers (see migrations) insert
one outbox row per subscribed endpoint in the same transaction as the row that
is the event (a campaign log entry, a tracked hit, a complaint, a mass email
turning Complete, a sign-up turning Confirmed). So the sending engine, the hit
endpoints, the bounce handling and the subscription forms need not know about
webhooks, and an event exists if and only if what it reports was committed.
"""

from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.db.models import Q


class EventType(models.TextChoices):
    SENT = "sent", "Sent"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    BOUNCED_HARD = "bounced_hard", "Bounced (hard)"
    BOUNCED_SOFT = "bounced_soft", "Bounced (soft)"
    OPTED_OUT = "opted_out", "Opted out"
    COMPLAINED = "complained", "Complained"
    MASS_EMAIL_FINISHED = "mass_email_finished", "Mass email finished"
    SUBSCRIBED = "subscribed", "Subscribed (sign-up confirmed)"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    name = models.CharField(max_length=200)
    url = models.URLField("URL", max_length=2000)
    # A list of EventType values; the triggers read it (JSON on every database).
    event_types = models.JSONField(default=list)
    secret = models.CharField(
        max_length=100,
        default=new_secret,
        help_text="Signs every delivery (HMAC-SHA256); the receiver keeps a copy.",
    )
    active = models.BooleanField(
        default=True, help_text="Inactive: no new events are recorded for it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Delivery state, written by webhooks.delivery only.
    failures = models.PositiveIntegerField("failures in a row", default=0, editable=False)
    retry_at = models.DateTimeField(null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_status = models.CharField(max_length=300, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "webhook endpoint"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def reference(to: str) -> models.ForeignKey:
    """What an event is about: nullable, no constraint or index (the outbox is written
    by triggers and read by endpoint); set to null by Django's on_delete only."""
    return models.ForeignKey(
        to,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )


class WebhookEvent(models.Model):
    """One event for one endpoint: the outbox row, pending until the endpoint took it."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    # The id receivers de-duplicate by: the same on every retry.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=30, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField()
    # What the event is about, copied by the trigger from the source row (so a log
    # entry deleted later still gives its event); references are kept by Django's
    # on_delete only, as the campaign log's are.
    campaign = reference("campaigns.Campaign")
    mass_email = reference("massmail.MassEmail")
    queue_item = reference("massmail.QueueItem")
    content_type = reference("contenttypes.ContentType")
    object_id = models.BigIntegerField(null=True)
    email_address = models.CharField(max_length=254, blank=True)
    tracking_url = reference("tracking.TrackingUrl")
    hit = reference("tracking.Hit")
    # A subscribed event's form, and the lists the person joined as they were then
    # ([{"id": ..., "name": ...}], so a list renamed later does not change it); null
    # for the other types (the older triggers leave the column out).
    subscription_form = reference("subscriptions.SubscriptionForm")
    target_lists = models.JSONField(null=True, blank=True)
    is_test = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "webhook event"
        ordering = ["-id"]
        indexes = [
            # Delivery reads an endpoint's pending events in id order.
            models.Index(
                fields=["endpoint", "id"],
                condition=Q(delivered_at__isnull=True),
                name="webhook_event_pending",
            ),
            models.Index(fields=["endpoint", "-id"], name="webhook_event_endpoint"),
            # The clean-up on every run deletes delivered events older than a week.
            models.Index(
                fields=["delivered_at"],
                condition=Q(delivered_at__isnull=False),
                name="webhook_event_delivered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} {self.email_address}".strip()
