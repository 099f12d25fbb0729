from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from bounces import imap
from bounces.effects import apply_held
from bounces.models import (
    BounceEvent,
    GroupEmailAccount,
    HeldReport,
    ProcessedMessage,
    UnmatchedBounce,
)

MAILBOX_BUTTONS = [("test", "Test connection"), ("poll", "Check for bounces now")]


class GroupEmailAccountForm(forms.ModelForm):
    """Passwords are never shown back; leaving a password empty keeps the stored one."""

    imap_password = forms.CharField(
        label="IMAP password", required=False, widget=forms.PasswordInput(render_value=False)
    )
    smtp_password = forms.CharField(
        label="SMTP password", required=False, widget=forms.PasswordInput(render_value=False)
    )

    class Meta:
        model = GroupEmailAccount
        exclude = ["uidvalidity", "last_uid", "last_polled_at", "last_error", "last_error_at"]

    def _keep_stored(self, field: str) -> str:
        value = self.cleaned_data.get(field)
        if not value and self.instance.pk:
            return getattr(GroupEmailAccount.objects.get(pk=self.instance.pk), field)
        return value or ""

    def clean_imap_password(self) -> str:
        return self._keep_stored("imap_password")

    def clean_smtp_password(self) -> str:
        return self._keep_stored("smtp_password")


@admin.register(GroupEmailAccount)
class GroupEmailAccountAdmin(admin.ModelAdmin):
    form = GroupEmailAccountForm
    list_display = [
        "name",
        "email_address",
        "handles_bounces",
        "active",
        "last_polled_at",
        "status",
    ]
    actions = ["test_connection", "poll_now"]
    list_filter = ["handles_bounces", "active"]
    search_fields = ["name", "email_address"]
    readonly_fields = ["uidvalidity", "last_uid", "last_polled_at", "last_error", "last_error_at"]
    fieldsets = [
        (None, {"fields": ["name", "email_address", "from_name", "active"]}),
        ("Reply-to", {"fields": ["reply_to_address", "reply_to_name"]}),
        (
            "IMAP (bounce mailbox)",
            {
                "fields": [
                    "handles_bounces",
                    "imap_host",
                    "imap_port",
                    "imap_security",
                    "imap_username",
                    "imap_password",
                    "imap_folder",
                    "after_processing",
                    "processed_folder",
                ]
            },
        ),
        (
            "SMTP",
            {
                "fields": [
                    "use_smtp_for_mass_email",
                    "smtp_host",
                    "smtp_port",
                    "smtp_security",
                    "smtp_username",
                    "smtp_password",
                ]
            },
        ),
        (
            "Poller status",
            {
                "fields": [
                    "last_polled_at",
                    "last_error",
                    "last_error_at",
                    "uidvalidity",
                    "last_uid",
                ]
            },
        ),
    ]

    @admin.display(description="status")
    def status(self, account: GroupEmailAccount) -> str:
        if account.last_error:
            when = account.last_error_at.strftime("%Y-%m-%d %H:%M") if account.last_error_at else ""
            return format_html('<span style="color:#ba2121">{} {}</span>', when, account.last_error)
        return "OK" if account.last_polled_at else "not polled yet"

    def get_urls(self):
        view = self.admin_site.admin_view(self.mailbox_view)
        return [
            path("<int:pk>/mailbox/<str:verb>/", view, name="bounces_groupemailaccount_mailbox"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "mailbox_buttons": MAILBOX_BUTTONS}
        return super().change_view(request, object_id, form_url, extra_context)

    def mailbox_view(self, request: HttpRequest, pk: int, verb: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        account = get_object_or_404(GroupEmailAccount, pk=pk)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        accounts = GroupEmailAccount.objects.filter(pk=pk)
        if verb == "test":
            self.test_connection(request, accounts)
        elif verb == "poll":
            self.poll_now(request, accounts)
        return HttpResponseRedirect(
            reverse("admin:bounces_groupemailaccount_change", args=[account.pk])
        )

    @admin.action(description="Test connection")
    def test_connection(self, request: HttpRequest, queryset: QuerySet) -> None:
        for account in queryset:
            try:
                self.message_user(request, f"{account.name}: {imap.check_connection(account)}")
            except imap.MailboxError as error:
                self.message_user(request, f"{account.name}: {error}", messages.ERROR)

    @admin.action(description="Check for bounces now")
    def poll_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for account in queryset:
            result = imap.poll_account(account)
            level = messages.ERROR if result.error else messages.SUCCESS
            if result.skipped:
                level = messages.WARNING
            self.message_user(request, str(result), level)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the bounce pipeline: looked at and removed, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(BounceEvent)
class BounceEventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "address", "verdict", "status", "reason", "source"]
    list_filter = ["verdict", "reason", "source", "occurred_at"]
    search_fields = ["address", "diagnostic"]
    list_select_related = ["email_address"]
    raw_id_fields = ["email_address", "queue_item"]
    date_hierarchy = "occurred_at"


@admin.register(UnmatchedBounce)
class UnmatchedBounceAdmin(ReadOnlyAdmin):
    """Bounces for addresses nobody here has: a typo'd import, an old list, a forwarder."""

    list_display = ["occurred_at", "address", "verdict", "status", "reason", "source", "reviewed"]
    list_filter = ["reviewed", "verdict", "reason", "source"]
    search_fields = ["address", "diagnostic"]
    readonly_fields = ["address", "verdict", "status", "reason", "diagnostic", "source"]
    exclude = ["email_address", "queue_item", "event_key"]
    actions = ["mark_reviewed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(email_address__isnull=True)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Viewing the list and marking rows reviewed need it; fields stay read-only.
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Mark as reviewed")
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(reviewed=True)
        self.message_user(request, f"{count} bounce(s) marked as reviewed.")


@admin.register(HeldReport)
class HeldReportAdmin(ReadOnlyAdmin):
    """Mailed bounces and complaints no message of ours vouches for: possibly forged."""

    list_display = [
        "received_at",
        "address",
        "verdict",
        "status",
        "reason",
        "source",
        "applied_at",
    ]
    list_filter = [("applied_at", admin.EmptyFieldListFilter), "verdict", "source"]
    search_fields = ["address", "diagnostic"]
    readonly_fields = [
        *["address", "verdict", "status", "reason", "diagnostic", "source"],
        *["received_at", "applied_at"],
    ]
    exclude = ["email_address", "event_key"]
    actions = ["apply"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The action needs it; fields stay read-only.
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Apply to the address (mark invalid or opted out)")
    def apply(self, request: HttpRequest, queryset: QuerySet) -> None:
        applied = [held for held in queryset if apply_held(held)]
        self.message_user(request, f"{len(applied)} held report(s) applied.")


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(ReadOnlyAdmin):
    list_display = ["processed_at", "account", "uid", "subject", "outcome", "error"]
    list_filter = ["outcome", "account"]
    search_fields = ["subject", "message_id", "error"]
    exclude = ["raw"]
    actions = ["process_again"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [f.name for f in ProcessedMessage._meta.fields if f.name != "raw"]

    @admin.action(description="Process failed messages again")
    def process_again(self, request: HttpRequest, queryset: QuerySet) -> None:
        failed = queryset.filter(outcome=ProcessedMessage.Outcome.ERROR)
        outcomes = [imap.process_again(record) for record in failed]
        self.message_user(
            request,
            f"{len(outcomes)} message(s) processed again: "
            f"{outcomes.count(ProcessedMessage.Outcome.BOUNCE)} bounce(s), "
            f"{outcomes.count(ProcessedMessage.Outcome.ERROR)} still failing.",
        )
