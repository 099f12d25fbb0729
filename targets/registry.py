"""The target types usable in target lists: built-in ones and those settings add.

Everything that works per type (queue building, adding a filtered selection to a
list, CSV import, placeholders) asks this registry instead of naming models.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models

PERSON = "person"
COMPANY = "company"


@dataclass(frozen=True)
class TargetType:
    model: type[models.Model]
    kind: str  # PERSON or COMPANY
    order: int  # queue order: accounts, contacts, leads, users, then custom types

    @property
    def key(self) -> str:
        """Placeholder prefix and CSV type name: Contact, Lead, Account, User, ..."""
        return self.model.__name__

    @property
    def label(self) -> str:
        return str(self.model._meta.verbose_name_plural).capitalize()

    @property
    def content_type(self) -> ContentType:
        return ContentType.objects.get_for_model(self.model)

    @property
    def is_person(self) -> bool:
        return self.kind == PERSON


@cache
def _configured() -> tuple[TargetType, ...]:
    entries = list(settings.MASSMAIL_TARGET_TYPES) + list(settings.MASSMAIL_CUSTOM_TARGET_TYPES)
    types = []
    for order, (label, kind) in enumerate(entries):
        if kind not in (PERSON, COMPANY):
            raise ValueError(f"Target type {label}: kind must be person or company, not {kind!r}")
        types.append(TargetType(apps.get_model(label), kind, order))
    return tuple(types)


def target_types() -> tuple[TargetType, ...]:
    return _configured()


def target_type_for(model_or_ct: type[models.Model] | ContentType | int) -> TargetType | None:
    if isinstance(model_or_ct, int):
        model_or_ct = ContentType.objects.get_for_id(model_or_ct)
    model = model_or_ct.model_class() if isinstance(model_or_ct, ContentType) else model_or_ct
    for target_type in target_types():
        if target_type.model is model:
            return target_type
    return None


def target_type_by_key(key: str) -> TargetType | None:
    for target_type in target_types():
        if target_type.key.lower() == key.lower():
            return target_type
    return None


def clear_cache() -> None:
    """For tests that change MASSMAIL_CUSTOM_TARGET_TYPES."""
    _configured.cache_clear()
