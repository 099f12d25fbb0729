from django import forms
from django.contrib import admin

from bounces.models import GroupEmailAccount


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
    list_display = ["name", "email_address", "handles_bounces", "last_polled_at", "last_error_at"]
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
