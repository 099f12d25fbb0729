"""Admin forms of the campaigns app."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from campaigns.models import Campaign, EmailTemplate
from massmail.placeholders import validate_template


class EmailTemplateForm(forms.ModelForm):
    """Refuses placeholders that would not render, here rather than in sent mail.

    A template already used by mass emails is also checked against their
    campaigns, so a tracking URL of another campaign cannot slip in later.
    """

    class Meta:
        model = EmailTemplate
        fields = "__all__"

    def clean(self) -> dict:
        cleaned = super().clean()
        draft = EmailTemplate(
            subject=cleaned.get("subject") or "",
            body_html=cleaned.get("body_html") or "",
            body_text=cleaned.get("body_text") or "",
        )
        errors = validate_template(draft)
        if self.instance.pk:
            for campaign in Campaign.objects.filter(
                mass_emails__email_template=self.instance
            ).distinct():
                errors += [e for e in validate_template(draft, campaign) if e not in errors]
        if errors:
            raise ValidationError(errors)
        return cleaned
