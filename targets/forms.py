"""Forms of the target-list admin pages: choosing a list, uploading and mapping a CSV file."""

from __future__ import annotations

from django import forms

from targets.importing import ImportField
from targets.models import TargetList
from targets.registry import target_types

NOT_IMPORTED = ""


class ChooseTargetListForm(forms.Form):
    """The intermediate page of Add to / Remove from target list."""

    target_list = forms.ModelChoiceField(
        TargetList.objects.all(), required=False, empty_label="(choose a list)"
    )
    new_list_name = forms.CharField(
        label="or create a new list named", max_length=200, required=False
    )

    def __init__(self, *args, allow_new: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not allow_new:
            del self.fields["new_list_name"]

    def clean(self) -> dict:
        data = super().clean()
        chosen, new_name = data.get("target_list"), data.get("new_list_name", "").strip()
        if bool(chosen) == bool(new_name):
            raise forms.ValidationError(
                "Choose a list or name a new one." if not chosen else "Choose a list OR a new name."
            )
        if new_name and TargetList.objects.filter(name=new_name).exists():
            raise forms.ValidationError(f"A list named {new_name!r} exists already: choose it.")
        return data

    def get_target_list(self) -> TargetList:
        return self.cleaned_data["target_list"] or TargetList.objects.create(
            name=self.cleaned_data["new_list_name"].strip()
        )


def importable_type_choices() -> list[tuple[str, str]]:
    from django.contrib.auth import get_user_model

    return [(t.key, t.label) for t in target_types() if t.model is not get_user_model()]


# What spreadsheet programs and older systems write; "" reads UTF-8 and any file with a BOM.
ENCODINGS = [
    ("", "Detect (UTF-8, or UTF-16/UTF-32 with a BOM)"),
    ("cp1252", "Windows Western European (cp1252, Excel on Windows)"),
    ("mac_roman", "Mac OS Roman (Excel on older Macs)"),
    ("iso-8859-1", "ISO Latin-1 (iso-8859-1)"),
    ("iso-8859-15", "ISO Latin-9 with the euro sign (iso-8859-15)"),
    ("cp1250", "Windows Central European (cp1250)"),
    ("cp1251", "Windows Cyrillic (cp1251)"),
    ("utf-16", "UTF-16 without a BOM (little-endian)"),
]


class UploadForm(ChooseTargetListForm):
    file = forms.FileField(label="CSV file")
    target_type = forms.ChoiceField(label="Import as", choices=importable_type_choices)
    encoding = forms.ChoiceField(
        required=False,
        choices=ENCODINGS,
        help_text="Detect reads UTF-8 and Excel's Unicode Text; choose another if the "
        "file came from an older program and its accents look wrong.",
    )
    field_order = ["file", "target_type", "target_list", "new_list_name", "encoding"]


class MappingForm(forms.Form):
    """One choice of CSV column per importable field, and the file's encoding."""

    encoding = forms.ChoiceField(
        required=False,
        choices=ENCODINGS,
        help_text="If the preview finds bytes that are not valid in the encoding, choose another.",
    )

    def __init__(self, *args, fields: list[ImportField], headers: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(NOT_IMPORTED, "(not imported)")] + [(h, h) for h in headers if h]
        self.field_names = [import_field.name for import_field in fields]
        for import_field in fields:
            label = import_field.label + (" *" if import_field.required else "")
            self.fields[import_field.name] = forms.ChoiceField(
                label=label, choices=choices, required=False
            )
        self.order_fields([*self.field_names, "encoding"])

    def mapping(self) -> dict[str, str]:
        chosen = {name: self.cleaned_data[name] for name in self.field_names}
        return {name: header for name, header in chosen.items() if header}
