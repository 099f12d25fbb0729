"""Subscription forms, the sign-ups they receive, and the consent records people leave.

A sign-up is only a request: nobody joins a list until they follow the signed
confirmation link sent to the address (double opt-in). Every sign-up,
confirmation, opt-out and re-subscription leaves a consent record naming the
time, the truncated IP, the user agent, the form and the text the person saw.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from massmail.placeholders import keys_in

CONFIRM_URL_KEY = "confirmUrl"
# The record fields a form may ask for besides the address and the names.
EXTRA_FIELDS = {"title": "Title", "phone": "Phone", "city": "City", "country": "Country"}


def new_form_key() -> str:
    return secrets.token_urlsafe(12)


class SubscriptionForm(models.Model):
    class RecordType(models.TextChoices):
        LEAD = "lead", "Lead"
        CONTACT = "contact", "Contact"

    name = models.CharField(max_length=200)
    # The form's public name in URLs: random, so forms cannot be enumerated.
    key = models.CharField(max_length=32, unique=True, default=new_form_key, editable=False)
    active = models.BooleanField(default=True)
    target_lists = models.ManyToManyField("targets.TargetList", related_name="subscription_forms")
    record_type = models.CharField(
        "new people become",
        max_length=10,
        choices=RecordType.choices,
        default=RecordType.LEAD,
        help_text="A confirmed address that already belongs to a contact or lead joins as that.",
    )
    ask_first_name = models.BooleanField(default=True)
    ask_last_name = models.BooleanField(default=True)
    extra_fields = models.JSONField(
        default=list, blank=True, help_text=f"Any of: {', '.join(EXTRA_FIELDS)}."
    )
    language = models.CharField(
        max_length=10, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE
    )
    heading = models.CharField(max_length=200, default="Subscribe to our newsletter")
    intro = models.TextField(blank=True)
    consent_text = models.TextField(
        help_text="What the person agrees to by subscribing; kept with their consent record.",
        default="I agree to receive email from you. I can unsubscribe at any time.",
    )
    button_label = models.CharField(max_length=100, default="Subscribe")
    thanks_text = models.TextField(
        "text after submitting",
        default="Thank you. Please check your inbox and confirm your subscription.",
    )
    thanks_url = models.URLField(
        "page after submitting", blank=True, help_text="Empty: a page of this site with the text."
    )
    confirmed_text = models.TextField(
        "text once confirmed", default="Thank you, your subscription is confirmed."
    )
    confirmed_url = models.URLField(
        "page once confirmed", blank=True, help_text="Empty: a page of this site with the text."
    )
    confirmation_template = models.ForeignKey(
        "campaigns.EmailTemplate",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The confirmation email; its body must contain {confirmUrl}. Also: "
        "{Person.firstName}, {Person.lastName}, {emailAddress}.",
    )
    confirm_within_hours = models.PositiveIntegerField(
        default=48, help_text="Unconfirmed sign-ups expire after this."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        unknown = set(self.extra_fields or []) - set(EXTRA_FIELDS)
        if unknown:
            errors["extra_fields"] = f"Unknown fields: {', '.join(sorted(unknown))}."
        template = self.confirmation_template if self.confirmation_template_id else None
        if template is not None:
            bodies = template.body_html + template.body_text
            if CONFIRM_URL_KEY not in keys_in(bodies):
                errors["confirmation_template"] = "The template's body needs {confirmUrl}."
        if errors:
            raise ValidationError(errors)

    @property
    def confirm_within(self) -> timedelta:
        return timedelta(hours=self.confirm_within_hours)


class SignUp(models.Model):
    """A submitted form waiting for (or past) its confirmation."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for confirmation"
        CONFIRMED = "confirmed", "Confirmed"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    form = models.ForeignKey(SubscriptionForm, on_delete=models.CASCADE, related_name="sign_ups")
    address = models.CharField(max_length=254)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    ip = models.GenericIPAddressField("IP address (truncated)", null=True, blank=True)
    # A keyed hash of the full IP: counts sign-ups per client without keeping the IP.
    client_key = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "sign-up"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["client_key", "created_at"]),
            models.Index(fields=["address", "created_at"]),
            models.Index(
                fields=["expires_at"], condition=models.Q(status="pending"), name="sign_up_expiry"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_status_display()})"

    def is_expired(self, now=None) -> bool:
        return self.status == self.Status.PENDING and self.expires_at <= (now or timezone.now())


class ConsentRecord(models.Model):
    """One step of a person's consent, kept by address (unconfirmed sign-ups have no record)."""

    class Action(models.TextChoices):
        SIGN_UP = "sign_up", "Sign-up"
        CONFIRMATION = "confirmation", "Confirmation"
        OPT_OUT = "opt_out", "Opt-out"
        RE_SUBSCRIPTION = "re_subscription", "Re-subscription"

    address = models.CharField(max_length=254)
    action = models.CharField(max_length=20, choices=Action.choices)
    at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    form = models.ForeignKey(
        SubscriptionForm, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_lists = models.CharField("lists", max_length=1000, blank=True)
    text = models.TextField("text agreed to or shown", blank=True)

    class Meta:
        verbose_name = "consent record"
        ordering = ["address", "at", "id"]
        indexes = [models.Index(fields=["address", "at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} of {self.address} at {self.at:%Y-%m-%d %H:%M}"
