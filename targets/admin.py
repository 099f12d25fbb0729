from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db.models import OuterRef, QuerySet, Subquery

from targets.models import (
    Account,
    Contact,
    EmailAddress,
    Lead,
    RecordEmailAddress,
    TargetList,
    TargetListMember,
    set_email_addresses,
    validate_address,
)


@admin.register(EmailAddress)
class EmailAddressAdmin(admin.ModelAdmin):
    list_display = ["address", "opt_out", "invalid", "created_at"]
    list_filter = ["opt_out", "invalid"]
    search_fields = ["address"]
    show_full_result_count = False
    actions = ["mark_opted_out", "mark_opted_in", "mark_invalid", "mark_valid"]

    def get_search_results(self, request, queryset, search_term):
        # Addresses are stored lower-case: a prefix search can use the unique index.
        if search_term:
            return queryset.filter(address__startswith=search_term.strip().lower()), False
        return queryset, False

    def _flag(self, request, queryset, **values) -> None:
        count = queryset.update(**values)
        self.message_user(request, f"{count} address(es) updated.")

    @admin.action(description="Opt out (applies to every record using the address)")
    def mark_opted_out(self, request, queryset):
        self._flag(request, queryset, opt_out=True)

    @admin.action(description="Opt back in")
    def mark_opted_in(self, request, queryset):
        self._flag(request, queryset, opt_out=False)

    @admin.action(description="Mark invalid")
    def mark_invalid(self, request, queryset):
        self._flag(request, queryset, invalid=True)

    @admin.action(description="Mark valid")
    def mark_valid(self, request, queryset):
        self._flag(request, queryset, invalid=False)


class TargetForm(forms.ModelForm):
    """A target's addresses: one primary plus any others, each shared with other records."""

    email = forms.CharField(label="Email address", required=False, max_length=254)
    other_emails = forms.CharField(
        label="Other email addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            links = RecordEmailAddress.objects.filter(
                content_type=ContentType.objects.get_for_model(self.instance),
                object_id=self.instance.pk,
            ).select_related("email_address")
            self.fields["email"].initial = next(
                (link.email_address.address for link in links if link.primary), ""
            )
            self.fields["other_emails"].initial = "\n".join(
                link.email_address.address for link in links if not link.primary
            )

    def clean_email(self) -> str:
        value = self.cleaned_data["email"].strip()
        return validate_address(value) if value else ""

    def clean_other_emails(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["other_emails"].splitlines()]
        errors, addresses = [], []
        for line in filter(None, lines):
            try:
                addresses.append(validate_address(line))
            except forms.ValidationError as error:
                errors.extend(error.messages)
        if errors:
            raise forms.ValidationError(errors)
        return addresses


def primary_address_subquery(model) -> Subquery:
    return Subquery(
        RecordEmailAddress.objects.filter(
            content_type=ContentType.objects.get_for_model(model),
            object_id=OuterRef("pk"),
            primary=True,
        ).values("email_address__address")[:1]
    )


class TargetAdmin(admin.ModelAdmin):
    """Shared by every target type's admin, including custom ones (see register_target_admin)."""

    form = TargetForm
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(primary_email_address=primary_address_subquery(self.model))
        )

    @admin.display(description="Email address", ordering="primary_email_address")
    def email_address(self, obj) -> str:
        return obj.primary_email_address or ""

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lower()
        if "@" in term:
            # An address search: find records through the shared address table.
            ids = RecordEmailAddress.objects.filter(
                content_type=ContentType.objects.get_for_model(self.model),
                email_address__address__startswith=term,
            ).values("object_id")
            queryset = self.model.objects.filter(pk__in=ids).annotate(
                primary_email_address=primary_address_subquery(self.model)
            )
        return queryset, may_have_duplicates

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        set_email_addresses(
            obj, form.cleaned_data.get("email") or None, form.cleaned_data.get("other_emails", [])
        )


@admin.register(Account)
class AccountAdmin(TargetAdmin):
    list_display = ["name", "email_address", "industry", "city", "country", "created_at"]
    list_filter = ["industry", "country"]
    search_fields = ["name"]


@admin.register(Contact)
class ContactAdmin(TargetAdmin):
    list_display = ["name", "email_address", "account", "title", "city", "country", "created_at"]
    list_filter = ["country", "created_at"]
    list_select_related = ["account"]
    search_fields = ["last_name", "first_name"]
    autocomplete_fields = ["account"]
    ordering = ["last_name", "first_name"]


@admin.register(Lead)
class LeadAdmin(TargetAdmin):
    list_display = ["name", "email_address", "account_name", "status", "source", "created_at"]
    list_filter = ["status", "source", "created_at"]
    search_fields = ["last_name", "first_name", "account_name"]
    raw_id_fields = ["campaign"]
    ordering = ["last_name", "first_name"]


@admin.register(TargetList)
class TargetListAdmin(admin.ModelAdmin):
    list_display = ["name", "entry_count", "opted_out_count", "created_at"]
    search_fields = ["name"]

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).with_counts()

    @admin.display(description="Entries", ordering="entry_count")
    def entry_count(self, obj) -> int:
        return obj.entry_count

    @admin.display(description="Opted out", ordering="opted_out_count")
    def opted_out_count(self, obj) -> int:
        return obj.opted_out_count


@admin.register(TargetListMember)
class TargetListMemberAdmin(admin.ModelAdmin):
    list_display = ["target_list", "content_type", "object_id", "opted_out", "added_at"]
    list_filter = ["opted_out", "content_type", "target_list"]
    list_select_related = ["target_list", "content_type"]
    show_full_result_count = False
    raw_id_fields = ["target_list"]
