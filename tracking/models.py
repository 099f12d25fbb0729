"""Tracking URLs of a campaign; hits on links and the open pixel are recorded here too."""

from __future__ import annotations

from django.db import models


class TrackingUrl(models.Model):
    class Action(models.TextChoices):
        REDIRECT = "redirect", "Redirect"
        SHOW_MESSAGE = "show_message", "Show Message"

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="tracking_urls"
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
