from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse

from massmail.models import MassEmail, OutboundSettings, QueueItem


@admin.register(OutboundSettings)
class OutboundSettingsAdmin(admin.ModelAdmin):
    """A single row: the list page goes straight to it."""

    fieldsets = [
        (
            "Sending",
            {
                "fields": [
                    "max_per_hour",
                    "max_per_batch",
                    "spread_over_hour",
                    "max_attempts",
                    "from_address",
                    "from_name",
                    "bounce_address",
                    "use_verp",
                    "list_id",
                ]
            },
        ),
        (
            "Links and tracking",
            {
                "fields": [
                    "site_url",
                    "disable_mandatory_opt_out_link",
                    "open_tracking",
                    "truncate_ip",
                ]
            },
        ),
        ("Bounces", {"fields": ["soft_bounce_threshold", "soft_bounce_window_days"]}),
    ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        OutboundSettings.load()
        return HttpResponseRedirect(reverse("admin:massmail_outboundsettings_change", args=[1]))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MassEmail)
class MassEmailAdmin(admin.ModelAdmin):
    list_display = ["name", "campaign", "status", "start_at", "email_template"]
    list_filter = ["status", "campaign"]
    list_select_related = ["campaign", "email_template"]
    search_fields = ["name", "campaign__name"]
    autocomplete_fields = ["campaign", "email_template"]
    filter_horizontal = ["target_lists", "excluding_target_lists"]
    readonly_fields = ["queue_built_at"]
    fieldsets = [
        (None, {"fields": ["campaign", "name", "status", "start_at", "email_template"]}),
        (
            "Sender",
            {
                "fields": [
                    "from_address",
                    "from_name",
                    "reply_to_address",
                    "reply_to_name",
                    "group_email_account",
                ]
            },
        ),
        ("Recipients", {"fields": ["target_lists", "excluding_target_lists", "opt_out_entirely"]}),
        (None, {"fields": ["queue_built_at"]}),
    ]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        mass_email = form.instance
        # Target lists default to the campaign's.
        if not mass_email.target_lists.exists():
            mass_email.target_lists.set(mass_email.campaign.target_lists.all())
            if not mass_email.excluding_target_lists.exists():
                mass_email.excluding_target_lists.set(
                    mass_email.campaign.excluding_target_lists.all()
                )


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    list_display = [
        "email_address",
        "mass_email",
        "status",
        "attempt_count",
        "sent_at",
        "last_error",
        "is_test",
    ]
    list_filter = ["status", "is_test", "mass_email"]
    list_select_related = ["email_address", "mass_email"]
    search_fields = ["email_address__address"]
    show_full_result_count = False
    readonly_fields = [field.name for field in QueueItem._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
