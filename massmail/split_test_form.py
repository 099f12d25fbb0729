"""The form that makes an A/B test: the admin's page and the REST API both check with it."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from campaigns.models import EmailTemplate
from massmail.models import MassEmail, SplitTest
from massmail.splittests import LETTERS


class SplitTestForm(forms.ModelForm):
    """A new A/B test: the parent (not started yet) and 2-4 variants, each a subject,
    a from name or a template that differ from the parent's."""

    class Meta:
        model = SplitTest
        fields = ["parent", "test_percent", "wait", "metric", "min_events", "tie_variant"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["parent"].queryset = MassEmail.objects.filter(
            status__in=[MassEmail.Status.DRAFT, MassEmail.Status.PENDING],
            queue_built_at__isnull=True,
            split_test__isnull=True,
            split_variant__isnull=True,
        )
        for letter in LETTERS:
            low = letter.lower()
            self.fields[f"subject_{low}"] = forms.CharField(
                label=f"Variant {letter}: subject", max_length=400, required=False
            )
            self.fields[f"from_name_{low}"] = forms.CharField(
                label=f"Variant {letter}: from name", max_length=200, required=False
            )
            self.fields[f"template_{low}"] = forms.ModelChoiceField(
                EmailTemplate.objects.all(), label=f"Variant {letter}: template", required=False
            )

    def clean(self) -> dict:
        data = super().clean()
        variants = []
        for letter in LETTERS:
            low = letter.lower()
            differs = {
                "subject": data.get(f"subject_{low}"),
                "from_name": data.get(f"from_name_{low}"),
                "email_template": data.get(f"template_{low}"),
            }
            if any(differs.values()):
                variants.append(differs)
        if len(variants) < 2:
            raise ValidationError("Fill in at least two variants (A and B).")
        used = LETTERS[: len(variants)]
        if data.get("tie_variant") not in used:
            self.add_error("tie_variant", f"One of the variants: {', '.join(used)}.")
        data["variants"] = variants
        return data
