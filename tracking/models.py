"""Tracking URLs (of one campaign, or shared by all); hits on links and the open pixel."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TrackingUrl(models.Model):
    class Action(models.TextChoices):
        REDIRECT = "redirect", "Redirect"
        SHOW_MESSAGE = "show_message", "Show Message"

    # Blank: shared, usable in the templates of every campaign (a footer link, the
    # shop). A campaign's own URL is usable in that campaign's messages only.
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tracking_urls",
        help_text="Leave blank to share the URL with every campaign's templates.",
    )
    name = models.CharField(max_length=200)
    url = models.URLField(max_length=2000, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.REDIRECT)
    message = models.TextField(blank=True, help_text="Markdown, shown for Show Message.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "tracking URL"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def code(self) -> str:
        """What a marketer pastes into a template."""
        return f"{{trackingUrl:{self.pk}}}" if self.pk else ""

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.action == self.Action.REDIRECT and not self.url:
            raise ValidationError({"url": "A redirecting tracking URL needs a URL."})
        if self.action == self.Action.SHOW_MESSAGE and not self.message:
            raise ValidationError({"message": "Show Message needs a message."})


class Hit(models.Model):
    """One request on a public link, kept raw and classified person or machine.

    Campaign log entries (Opened, Clicked) keep every hit; statistics that count
    people use the distinct queue items having a hit with is_machine false.
    """

    class Kind(models.TextChoices):
        OPEN = "open", "Open pixel"
        CLICK = "click", "Tracked link"
        TRAP = "trap", "Hidden link"
        UNSUBSCRIBE_PAGE = "unsubscribe_page", "Unsubscribe page"

    # No index of its own: hit_item_at (queue_item, at) serves every lookup by item,
    # and each index is one more write on the hottest insert of the project.
    # Kept by Django's on_delete rather than database constraints, like the campaign
    # log's: a constraint check locks the referenced row, and all clicks on one link
    # would queue on that tracking URL's row.
    queue_item = models.ForeignKey(
        "massmail.QueueItem",
        on_delete=models.CASCADE,
        related_name="hits",
        db_index=False,
        db_constraint=False,
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    tracking_url = models.ForeignKey(
        TrackingUrl,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="hits",
        db_constraint=False,
    )
    at = models.DateTimeField()
    method = models.CharField(max_length=10)
    user_agent = models.CharField(max_length=500, blank=True)
    # The network part only (/24, /48) when OutboundSettings.truncate_ip is on.
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    is_machine = models.BooleanField(default=False)
    machine_reason = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # Burst detection reads an item's recent hits on every hit.
            models.Index(fields=["queue_item", "at"], name="hit_item_at"),
        ]

    def __str__(self) -> str:
        who = "machine" if self.is_machine else "person"
        return f"{self.get_kind_display()} by {who} at {self.at:%Y-%m-%d %H:%M:%S}"


class UnsubscribePageText(models.Model):
    """Texts of the unsubscribe page an administrator may change, per language.

    A blank field keeps the built-in text, which is translated into the
    visitor's language; a row with a blank language applies to every language
    that has no row of its own.
    """

    language = models.CharField(
        max_length=10,
        blank=True,
        unique=True,
        choices=[("", "Every language"), *settings.LANGUAGES],
        help_text="Blank: used for every language without a row of its own.",
    )
    heading = models.CharField(max_length=200, blank=True)
    lists_intro = models.TextField(
        "introduction (target lists)",
        blank=True,
        help_text="Shown above the names of the lists the recipient leaves.",
    )
    everything_intro = models.TextField(
        "introduction (all marketing email)",
        blank=True,
        help_text="Shown when the mass email opts out of all marketing email.",
    )
    unsubscribe_button = models.CharField(max_length=100, blank=True)
    unsubscribed_text = models.TextField("text once unsubscribed", blank=True)
    subscribe_again_button = models.CharField(max_length=100, blank=True)
    subscribed_again_text = models.TextField("text once subscribed again", blank=True)

    class Meta:
        verbose_name = "unsubscribe page text"
        ordering = ["language"]

    def __str__(self) -> str:
        return f"Unsubscribe page ({self.get_language_display()})"

    @classmethod
    def for_language(cls, language: str) -> dict[str, str]:
        """The administrator's texts for a language: only fields they filled in."""
        rows = {row.language: row for row in cls.objects.filter(language__in=["", language])}
        texts: dict[str, str] = {}
        for row in (rows.get(""), rows.get(language)):
            if row:
                texts.update({f: getattr(row, f) for f in TEXT_FIELDS if getattr(row, f)})
        return texts


TEXT_FIELDS = (
    "heading",
    "lists_intro",
    "everything_intro",
    "unsubscribe_button",
    "unsubscribed_text",
    "subscribe_again_button",
    "subscribed_again_text",
)
