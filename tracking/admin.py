from django.contrib import admin

from tracking.models import TrackingUrl


@admin.register(TrackingUrl)
class TrackingUrlAdmin(admin.ModelAdmin):
    list_display = ["name", "campaign", "action", "url", "code"]
    list_filter = ["action", "campaign"]
    list_select_related = ["campaign"]
    search_fields = ["name", "url"]
    readonly_fields = ["code"]
    autocomplete_fields = ["campaign"]

    @admin.display(description="Code to paste into a template")
    def code(self, obj) -> str:
        return obj.code
