"""Subscription forms with their embeddable snippet; consent shown on the address's page."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from subscriptions import consent
from subscriptions.models import EXTRA_FIELDS, ConsentRecord, SignUp, SubscriptionForm
from subscriptions.views import snippet
from targets.admin import EmailAddressAdmin
from targets.models import EmailAddress


def _https_by_default(field, **kwargs):
    # Typed without a scheme, an address means https (Django 6's default, said now).
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return field.formfield(**kwargs)


class SubscriptionFormForm(forms.ModelForm):
    extra_fields = forms.MultipleChoiceField(
        choices=list(EXTRA_FIELDS.items()),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Optional fields besides the address and the names.",
    )

    class Meta:
        model = SubscriptionForm
        fields = "__all__"
        formfield_callback = _https_by_default


@admin.register(SubscriptionForm)
class SubscriptionFormAdmin(admin.ModelAdmin):
    form = SubscriptionFormForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "active", "record_type", "language", "public_page"]
    filter_horizontal = ["target_lists"]
    readonly_fields = ["public_page", "embed_snippet"]

    @admin.display(description="public page")
    def public_page(self, obj: SubscriptionForm) -> str:
        if not obj.pk:
            return "-"
        url = reverse("subscriptions:form", args=[obj.key])
        return format_html('<a href="{}" target="_blank">{}</a>', url, url)

    @admin.display(description="HTML to paste on a website")
    def embed_snippet(self, obj: SubscriptionForm) -> str:
        if not obj.pk:
            return "Save the form first."
        return format_html(
            '<textarea readonly rows="16" cols="100" id="embed-snippet">{}</textarea>', snippet(obj)
        )


class KeptRecordAdmin(admin.ModelAdmin):
    """What people did is kept as it happened: shown, never typed in by hand."""

    search_fields = ["address"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SignUp)
class SignUpAdmin(KeptRecordAdmin):
    list_display = ["address", "form", "status", "created_at", "expires_at", "confirmed_at"]
    list_filter = ["status", "form"]


@admin.register(ConsentRecord)
class ConsentRecordAdmin(KeptRecordAdmin):
    list_display = ["address", "action", "at", "ip", "form", "target_lists"]
    list_filter = ["action", "form"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


admin.site.unregister(EmailAddress)


@admin.register(EmailAddress)
class EmailAddressWithConsentAdmin(EmailAddressAdmin):
    """The address's page shows its consent records, the access export and erasure."""

    change_form_template = "admin/subscriptions/emailaddress_change_form.html"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "targets_emailaddress_"
        return [
            path("<int:pk>/personal-data.json", wrap(self.export_json), name=f"{name}json"),
            path("<int:pk>/consent.csv", wrap(self.export_csv), name=f"{name}csv"),
            path("<int:pk>/erase/", wrap(self.erase_view), name=f"{name}erase"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        email = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if email is not None:
            extra["consent_records"] = ConsentRecord.objects.filter(address=email.address)
        return super().change_view(request, object_id, form_url, extra)

    def _email(self, request, pk: int) -> EmailAddress:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(EmailAddress, pk=pk)

    def export_json(self, request, pk: int) -> HttpResponse:
        email = self._email(request, pk)
        body = json.dumps(consent.person_data(email.address), indent=2, ensure_ascii=False)
        return _download(body, "application/json", f"personal-data-{pk}.json")

    def export_csv(self, request, pk: int) -> HttpResponse:
        email = self._email(request, pk)
        return _download(consent.consent_csv(email.address), "text/csv", f"consent-{pk}.csv")

    def erase_view(self, request, pk: int):
        email = self._email(request, pk)
        if not self.has_delete_permission(request, email):
            raise PermissionDenied
        if request.method == "POST":
            consent.erase(email.address)
            self.message_user(
                request, "The person's data is erased; the address is suppressed.", messages.SUCCESS
            )
            return redirect("admin:targets_emailaddress_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Erase this person's data",
            "email": email,
            "data": consent.person_data(email.address),
        }
        return TemplateResponse(request, "admin/subscriptions/erase.html", context)


def _download(body: str, content_type: str, name: str) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
