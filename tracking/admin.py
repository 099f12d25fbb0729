from django.contrib import admin
from django.db import models

from tracking.models import TEXT_FIELDS, Hit, TrackingUrl, UnsubscribePageText


@admin.register(TrackingUrl)
class TrackingUrlAdmin(admin.ModelAdmin):
    # Typed without a scheme, an address means https (Django 6's default, said now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "used_by", "action", "url", "code"]
    list_filter = ["action", "campaign"]
    list_select_related = ["campaign"]
    search_fields = ["name", "url"]
    readonly_fields = ["code"]
    autocomplete_fields = ["campaign"]

    @admin.display(description="Campaign", ordering="campaign__name")
    def used_by(self, obj) -> str:
        return str(obj.campaign) if obj.campaign_id else "Shared (every campaign)"

    @admin.display(description="Code to paste into a template")
    def code(self, obj) -> str:
        return obj.code


@admin.register(Hit)
class HitAdmin(admin.ModelAdmin):
    """Raw hits are evidence: visible and removable, never edited."""

    list_display = ["at", "kind", "queue_item", "tracking_url", "is_machine", "machine_reason"]
    list_filter = ["kind", "is_machine"]
    list_select_related = ["queue_item__email_address", "tracking_url"]
    raw_id_fields = ["queue_item", "tracking_url"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UnsubscribePageText)
class UnsubscribePageTextAdmin(admin.ModelAdmin):
    list_display = ["__str__", "heading"]
    fieldsets = [
        (None, {"fields": ["language"]}),
        (
            "Texts (blank: the built-in text, translated into the visitor's language)",
            {"fields": list(TEXT_FIELDS)},
        ),
    ]
