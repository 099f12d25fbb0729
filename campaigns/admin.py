from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from campaigns import sequences
from campaigns.forms import EmailTemplateForm
from campaigns.models import Campaign, CampaignLogRecord, EmailTemplate, Sequence, SequenceStep
from campaigns.panels import CampaignPanels
from massmail.models import MassEmail
from massmail.placeholders import picker_codes
from massmail.preview import sample_recipients, template_preview
from tracking.models import TrackingUrl


class MassEmailInline(admin.TabularInline):
    model = MassEmail
    fields = ["name", "status", "start_at", "email_template"]
    # Only the mass email's lifecycle actions move its status.
    readonly_fields = ["status"]
    extra = 0
    show_change_link = True
    autocomplete_fields = ["email_template"]


class TrackingUrlInline(admin.TabularInline):
    model = TrackingUrl
    # Typed without a scheme, an address means https (Django 6's default, said now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fields = ["name", "url", "action", "message", "code"]
    readonly_fields = ["code"]
    extra = 0

    @admin.display(description="Code to paste")
    def code(self, obj) -> str:
        return obj.code


@admin.register(Campaign)
class CampaignAdmin(CampaignPanels, admin.ModelAdmin):
    list_display = ["name", "type", "status", "start_date", "end_date", "mass_email_count"]
    list_filter = ["type", "status"]
    search_fields = ["name"]
    filter_horizontal = ["target_lists", "excluding_target_lists"]
    inlines = [MassEmailInline, TrackingUrlInline]
    fieldsets = [
        (None, {"fields": ["name", "type", "status", "start_date", "end_date", "budget"]}),
        ("Targets", {"fields": ["target_lists", "excluding_target_lists"]}),
        (None, {"fields": ["description"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(mass_email_count=Count("mass_emails"))

    @admin.display(description="Mass emails", ordering="mass_email_count")
    def mass_email_count(self, obj) -> int:
        return obj.mass_email_count

    def get_inline_instances(self, request, obj=None):
        # Mass emails and tracking URLs belong to email campaigns only.
        if obj is None or not obj.allows_mass_email:
            return []
        return super().get_inline_instances(request, obj)


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    """The template editor: a placeholder and tracking URL picker, and a preview for a
    sample recipient that the page refreshes while the marketer types."""

    form = EmailTemplateForm
    list_display = ["name", "subject", "updated_at"]
    search_fields = ["name", "subject"]

    def get_urls(self):
        own = [
            path(
                "preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),
                name="campaigns_emailtemplate_preview",
            )
        ]
        return own + super().get_urls()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "placeholder_groups": picker_codes(),
            "tracking_urls": TrackingUrl.objects.select_related("campaign").order_by(
                "campaign__name", "name"
            ),
            "samples": sample_recipients(),
            "template_preview_url": reverse("admin:campaigns_emailtemplate_preview"),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """The draft in the form (not what is saved) as the sample recipient would get it."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        draft = EmailTemplate(
            subject=request.POST.get("subject", ""),
            body_html=request.POST.get("body_html", ""),
            body_text=request.POST.get("body_text", ""),
        )
        try:
            shown = template_preview(draft, request.POST.get("recipient", ""))
        except ValidationError as invalid:
            return JsonResponse({"subject": "", "html": "", "errors": invalid.messages}, status=400)
        return JsonResponse({"subject": shown.subject, "html": shown.html, "errors": shown.errors})


@admin.register(CampaignLogRecord)
class CampaignLogRecordAdmin(admin.ModelAdmin):
    """The log is written by the system: rows can be looked at and removed, not edited."""

    list_display = [
        "action_date",
        "action",
        "bounce_type",
        "email_address",
        "campaign",
        "content_type",
        "object_id",
        "tracking_url",
        "is_test",
    ]
    list_filter = ["action", "is_test", "bounce_type", "campaign"]
    list_select_related = ["campaign", "content_type", "tracking_url"]
    search_fields = ["email_address"]
    date_hierarchy = "action_date"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class SequenceStepInline(admin.TabularInline):
    model = SequenceStep
    fields = ["position", "email_template", "delay", "delay_from", "condition", "mass_email_link"]
    readonly_fields = ["mass_email_link"]
    autocomplete_fields = ["email_template"]
    extra = 1

    @admin.display(description="sending")
    def mass_email_link(self, obj: SequenceStep) -> str:
        if not obj.mass_email_id:
            return "-"
        url = reverse("admin:massmail_massemail_change", args=[obj.mass_email_id])
        return format_html('<a href="{}">{}</a>', url, obj.mass_email)


@admin.register(Sequence)
class SequenceAdmin(admin.ModelAdmin):
    list_display = ["name", "campaign", "target_list", "active", "enrols_from"]
    list_filter = ["active"]
    search_fields = ["name"]
    inlines = [SequenceStepInline]
    readonly_fields = ["statistics"]
    fields = ["name", "campaign", "target_list", "active", "enrols_from", "statistics"]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        for step in form.instance.steps.select_related("sequence", "mass_email"):
            sequences.step_mass_email(step)

    @admin.display(description="Statistics per step")
    def statistics(self, obj: Sequence) -> str:
        if not obj.pk:
            return "-"
        columns = ["waiting", "stopped", "skipped", "queued", "sent", "opened", "clicked"]
        columns += ["opted_out", "bounced"]
        head = format_html_join("", "<th>{}</th>", ((c.replace("_", " "),) for c in columns))
        rows = format_html_join(
            "",
            "<tr><td>{}</td>{}</tr>",
            (
                (
                    f"Step {f.step.position}",
                    format_html_join("", "<td>{}</td>", ((getattr(f, c),) for c in columns)),
                )
                for f in sequences.step_statistics(obj)
            ),
        )
        return format_html(
            '<table id="step-statistics"><thead><tr><th>step</th>{}</tr></thead>'
            "<tbody>{}</tbody></table>",
            head,
            rows,
        )
