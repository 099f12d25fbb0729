from django import forms
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from webhooks.models import EventType, WebhookEndpoint, WebhookEvent


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label="URL", max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Events of these types are recorded for this endpoint from now on.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "event_types", "secret", "active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = [
        "name",
        "url",
        "active",
        "last_status",
        "last_attempt_at",
        "last_success_at",
        "pending",
        "retry_at",
    ]
    list_filter = ["active"]
    readonly_fields = [
        "pending",
        "failures",
        "retry_at",
        "last_attempt_at",
        "last_status",
        "last_success_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        pending = Count("events", filter=Q(events__delivered_at__isnull=True))
        return super().get_queryset(request).annotate(pending_count=pending)

    @admin.display(description="pending events")
    def pending(self, obj: WebhookEndpoint) -> int:
        if hasattr(obj, "pending_count"):
            return obj.pending_count
        return obj.events.filter(delivered_at__isnull=True).count()


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """The outbox, read-only: rows are written by database triggers and by delivery."""

    list_display = [
        "uid",
        "endpoint",
        "event_type",
        "email_address",
        "occurred_at",
        "attempts",
        "delivered_at",
    ]
    list_filter = ["endpoint", "event_type", ("delivered_at", admin.EmptyFieldListFilter)]
    list_select_related = ["endpoint"]
    search_fields = ["email_address", "=uid"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
