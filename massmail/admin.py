from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from massmail.dashboard import MassEmailDashboard, progress_of, unsent_count
from massmail.models import (
    DomainThrottle,
    MassEmail,
    OutboundSettings,
    QueueItem,
    SendingPause,
    SplitTest,
    SplitVariant,
)
from massmail.presend import PAST_START_GRACE
from massmail.retry import retry_plan, settle_delivered
from massmail.send_test import SendTestResult, send_test
from massmail.split_test_form import SplitTestForm
from massmail.splittests import (
    create_split_test,
    pick_winner,
    split_test_of,
    variant_figures,
)
from targets.models import Account, Contact, Lead, validate_address


@admin.register(OutboundSettings)
class OutboundSettingsAdmin(admin.ModelAdmin):
    """A single row: the list page goes straight to it."""

    # Typed without a scheme, an address means https (Django 6's default, said now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

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


class MassEmailForm(forms.ModelForm):
    """A start in the past sends at the next tick: said, and confirmed, before saving."""

    start_passed_ok = forms.BooleanField(
        label="Send although the start has passed",
        required=False,
        help_text="A start in the past means: at the next send tick.",
    )

    class Meta:
        model = MassEmail
        fields = "__all__"

    def clean(self) -> dict:
        data = super().clean()
        start_at = data.get("start_at")
        status = data.get("status", self.instance.status)
        changed = self.instance.pk is None or "start_at" in self.changed_data
        past = start_at is not None and start_at < timezone.now() - PAST_START_GRACE
        if changed and past and status == MassEmail.Status.PENDING:
            if not data.get("start_passed_ok"):
                self.add_error(
                    "start_at",
                    f"{timezone.localtime(start_at):%Y-%m-%d %H:%M} is in the past: the mass "
                    'email would go out at the next send tick. Tick "Send although the start '
                    'has passed" to confirm, or choose a later start.',
                )
        return data


@admin.register(MassEmail)
class MassEmailAdmin(MassEmailDashboard, admin.ModelAdmin):
    form = MassEmailForm
    list_display = ["name", "campaign", "status", "start_at", "email_template"]
    list_filter = ["status", "campaign"]
    list_select_related = ["campaign", "email_template"]
    search_fields = ["name", "campaign__name"]
    autocomplete_fields = ["campaign", "email_template"]
    filter_horizontal = ["target_lists", "excluding_target_lists"]
    readonly_fields = ["queue_built_at", "sending_progress"]
    actions = ["send_test_action", "pause_action", "resume_action", "cancel_action"]
    change_form_template = "admin/massmail/massemail/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "campaign",
                    "name",
                    "status",
                    "start_at",
                    "start_passed_ok",
                    "email_template",
                ]
            },
        ),
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
        ("Sending", {"fields": ["queue_built_at", "sending_progress"]}),
    ]

    # A new mass email is a draft or pending; afterwards only the lifecycle actions
    # (schedule, pause, resume, cancel) and the engine move its status.
    NEW_STATUSES = (MassEmail.Status.DRAFT, MassEmail.Status.PENDING)

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["status"] if obj is not None else fields

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "status":
            kwargs["choices"] = [c for c in db_field.choices if c[0] in self.NEW_STATUSES]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

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

    # ---- progress, pause/resume/cancel, send test (massmail.sending does the work)

    @admin.display(description="progress")
    def sending_progress(self, obj: MassEmail) -> str:
        if obj.pk is None:
            return "-"
        p = progress_of(obj)
        counts = format_html_join(
            ", ",
            "{} {}",
            [
                (p.total, "total"),
                (p.sent, "sent"),
                (p.failed, "failed"),
                (p.pending, "pending"),
                (p.sending, "sending now"),
                (p.unknown, "delivery unknown"),
                (p.canceled, "canceled"),
            ],
        )
        if p.next_portion_at is None:
            return counts
        when = timezone.localtime(p.next_portion_at).strftime("%Y-%m-%d %H:%M")
        return format_html("{}; next portion at about {}", counts, when)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        mass_email = self.get_object(request, object_id)
        buttons = []
        if mass_email is not None:
            buttons = [
                ("schedule", "Schedule sending", mass_email.can_schedule()),
                ("pause", "Pause", mass_email.can_pause()),
                ("resume", "Resume", mass_email.can_resume()),
                ("cancel", "Cancel sending", mass_email.can_cancel()),
            ]
        extra_context = {
            **(extra_context or {}),
            "sending_buttons": buttons,
        }
        test = split_test_of(mass_email) if mass_email is not None else None
        if test is not None:
            extra_context.update(split_test=test, split_figures=variant_figures(test))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        own = [
            path(
                "<int:object_id>/send-test/",
                self.admin_site.admin_view(self.send_test_view),
                name="massmail_massemail_send_test",
            ),
            path(
                "send-test/autocomplete/",
                self.admin_site.admin_view(
                    SendTestAutocomplete.as_view(admin_site=self.admin_site)
                ),
                name="massmail_massemail_send_test_autocomplete",
            ),
            path(
                "<int:object_id>/split-winner/<str:letter>/",
                self.admin_site.admin_view(self.split_winner_view),
                name="massmail_massemail_split_winner",
            ),
            path(
                "<int:object_id>/sending/<str:verb>/",
                self.admin_site.admin_view(self.status_view),
                name="massmail_massemail_status",
            ),
        ]
        return own + super().get_urls()

    _VERBS = ("schedule", "pause", "resume", "cancel")

    def split_winner_view(self, request, object_id: int, letter: str):
        """The A/B test panel's "Pick as winner" buttons (POST only; once)."""
        test = get_object_or_404(SplitTest, parent_id=object_id)
        if not self.has_change_permission(request, test.parent):
            raise PermissionDenied
        if request.method == "POST":
            if pick_winner(test.pk, letter, by=request.user.get_username()):
                self.message_user(request, f"Variant {letter} wins; it gets the rest.")
            else:
                self.message_user(request, "The winner is already picked.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:massmail_massemail_change", args=[object_id]))

    def status_view(self, request, object_id: int, verb: str):
        """The lifecycle buttons of the change page (POST only); Cancel asks first."""
        mass_email = get_object_or_404(MassEmail, pk=object_id)
        change_url = reverse("admin:massmail_massemail_change", args=[object_id])
        if verb not in self._VERBS:
            return HttpResponseRedirect(change_url)
        if not self.has_change_permission(request, mass_email):
            raise PermissionDenied
        if verb == "cancel" and not (request.method == "POST" and request.POST.get("confirm")):
            return self._confirm_cancel(request, [mass_email], change_url)
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        self._apply(request, [mass_email], verb)
        return HttpResponseRedirect(change_url)

    def _confirm_cancel(self, request, mass_emails, back_url: str, action: str = ""):
        """The page between the Cancel button and the cancel: what will not be sent."""
        rows = [(mass_email, unsent_count(mass_email)) for mass_email in mass_emails]
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel sending?",
            "opts": self.model._meta,
            "rows": rows,
            "unsent": sum(count for _, count in rows),
            "back_url": back_url,
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/massmail/massemail/cancel_confirmation.html", context
        )

    def _apply(self, request, mass_emails, verb: str) -> None:
        for mass_email in mass_emails:
            if getattr(mass_email, verb)():
                self.message_user(request, f"{mass_email}: {mass_email.get_status_display()}.")
            else:
                self.message_user(
                    request,
                    f"{mass_email} cannot {verb} while {mass_email.get_status_display()}.",
                    messages.WARNING,
                )

    @admin.action(description="Pause sending", permissions=["change"])
    def pause_action(self, request, queryset) -> None:
        self._apply(request, queryset, "pause")

    @admin.action(description="Resume sending", permissions=["change"])
    def resume_action(self, request, queryset) -> None:
        self._apply(request, queryset, "resume")

    @admin.action(description="Cancel (pending items are canceled)", permissions=["change"])
    def cancel_action(self, request, queryset):
        if not request.POST.get("confirm"):
            back = reverse("admin:massmail_massemail_changelist")
            return self._confirm_cancel(request, list(queryset), back, action="cancel_action")
        self._apply(request, queryset, "cancel")
        return None

    @admin.action(description="Send test", permissions=["change"])
    def send_test_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one mass email to test.", messages.WARNING)
            return None
        url = reverse("admin:massmail_massemail_send_test", args=[queryset.get().pk])
        return HttpResponseRedirect(url)

    def send_test_view(self, request, object_id: int):
        mass_email = get_object_or_404(MassEmail, pk=object_id)
        if not self.has_change_permission(request, mass_email):
            raise PermissionDenied
        form = SendTestForm(
            request.POST or None, admin_site=self.admin_site, initial={"users": [request.user.pk]}
        )
        if request.method == "POST" and form.is_valid():
            if not mass_email.can_send_test():
                self.message_user(
                    request, "A canceled mass email cannot be tested.", messages.ERROR
                )
            else:
                self._report_test(request, send_test(mass_email, **form.recipients()))
                return HttpResponseRedirect(
                    reverse("admin:massmail_massemail_change", args=[mass_email.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Send test: {mass_email}",
            "mass_email": mass_email,
            "form": form,
            "opts": self.model._meta,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/massmail/massemail/send_test.html", context)

    def _report_test(self, request, result: SendTestResult) -> None:
        if result.sent:
            self.message_user(request, f"Test sent to {', '.join(result.sent)}.")
        for who, why in result.skipped:
            self.message_user(request, f"Skipped {who}: {why}.", messages.WARNING)
        for who, why in result.failed:
            self.message_user(request, f"Not sent to {who}: {why}", messages.ERROR)
        if not (result.sent or result.skipped or result.failed):
            self.message_user(request, "Nobody was chosen.", messages.WARNING)


# Send Test's pickers: field name -> the model whose records it picks.
SEND_TEST_PICKERS = {
    "users": get_user_model(),
    "contacts": Contact,
    "leads": Lead,
    "accounts": Account,
}


class _Picker:
    """What the admin's autocomplete widget and view read from a relation field: here a
    picker of Send Test (mass email -> records of `model`), which no model field is."""

    def __init__(self, model, name: str) -> None:
        self.model = MassEmail  # the source: data-app-label / data-model-name
        self.name = name
        self.remote_field = _Remote(model)

    def get_limit_choices_to(self) -> dict:
        return {}


class _Remote:
    def __init__(self, model) -> None:
        self.model = model


class SendTestAutocomplete(AutocompleteJsonView):
    """The admin's own autocomplete (search fields and view permission of the picked
    model's admin), for a Send Test picker instead of a model field."""

    def process_request(self, request):
        name = request.GET.get("field_name", "")
        model = SEND_TEST_PICKERS.get(name)
        model_admin = self.admin_site._registry.get(model)
        if model_admin is None or not model_admin.get_search_fields(request):
            raise PermissionDenied
        return request.GET.get("term", ""), model_admin, _Picker(model, name), "pk"


class _PickerWidget(AutocompleteSelectMultiple):
    def get_url(self) -> str:
        return reverse("admin:massmail_massemail_send_test_autocomplete")


class RecordsField(forms.ModelMultipleChoiceField):
    """Records picked by typing a name (select2, as the admin's autocomplete_fields)."""

    def __init__(self, name: str, admin_site, **kwargs) -> None:
        model = SEND_TEST_PICKERS[name]
        widget = _PickerWidget(_Picker(model, name), admin_site)
        super().__init__(model._default_manager.all(), required=False, widget=widget, **kwargs)


class SendTestForm(forms.Form):
    addresses = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 50}),
        help_text="One email address per line.",
    )

    def __init__(self, *args, admin_site, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in SEND_TEST_PICKERS:
            self.fields[name] = RecordsField(name, admin_site, label=name.capitalize())
        self.order_fields(["users", "contacts", "leads", "accounts", "addresses"])

    def clean_addresses(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["addresses"].splitlines()]
        errors, addresses = [], []
        for line in filter(None, lines):
            try:
                addresses.append(validate_address(line))
            except ValidationError as error:
                errors.extend(error.messages)
        if errors:
            raise ValidationError(errors)
        return addresses

    def recipients(self) -> dict:
        data = self.cleaned_data
        records = [*data["users"], *data["contacts"], *data["leads"], *data["accounts"]]
        return {"records": records, "addresses": data["addresses"]}


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

    actions = ["retry_action"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("massmail.change_massemail")

    @admin.action(description="Retry (delivery unknown or failed items)", permissions=["retry"])
    def retry_action(self, request, queryset):
        """First a page that says what Retry would do (how many may get a second copy);
        its button acts."""
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Retry these queue items?",
                "plan": retry_plan(queryset),
                "selected": queryset.values_list("pk", flat=True),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/massmail/queueitem/retry_confirmation.html", context
            )
        settled = settle_delivered(queryset)
        retried = queryset.retry()
        self.message_user(
            request,
            f"{retried} item(s) back to Pending; the next tick sends them."
            f" {settled} known to be delivered marked Sent.",
        )
        return None


@admin.register(DomainThrottle)
class DomainThrottleAdmin(admin.ModelAdmin):
    """Caps per receiving domain, besides the hourly cap of the outbound settings."""

    list_display = ["domain", "per_minute", "per_hour"]
    list_editable = ["per_minute", "per_hour"]
    search_fields = ["domain"]


@admin.register(SendingPause)
class SendingPauseAdmin(admin.ModelAdmin):
    """What sending waits for; deleting a pause lifts it."""

    list_display = ["kind", "key", "since", "paused_until", "ramp_until", "reason"]
    list_filter = ["kind"]
    readonly_fields = ["kind", "key", "since", "paused_until", "ramp_until", "reason"]

    def has_add_permission(self, request) -> bool:
        return False


class SplitVariantInline(admin.TabularInline):
    model = SplitVariant
    fields = ["letter", "mass_email", "decided_sent", "decided_events"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SplitTest)
class SplitTestAdmin(admin.ModelAdmin):
    """Made here, run from the parent's page (figures, winner, manual pick)."""

    form = SplitTestForm
    list_display = ["parent", "metric", "test_percent", "state", "winner"]
    list_filter = ["state", "metric"]
    list_select_related = ["parent"]
    inlines = [SplitVariantInline]
    readonly_fields = ["state", "split_at", "decided_at", "winner", "decision"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        if obj is None:
            return []
        return [*SplitTestForm.Meta.fields, *self.readonly_fields]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the test runs by itself; the pick is on the mass email page

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its parent would hold the rest of its queue for ever

    def save_model(self, request, obj, form, change) -> None:
        fields = {name: form.cleaned_data[name] for name in SplitTestForm.Meta.fields}
        parent = fields.pop("parent")
        obj.pk = create_split_test(parent, form.cleaned_data["variants"], **fields).pk
