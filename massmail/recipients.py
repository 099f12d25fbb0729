"""Loading what placeholders need about recipients: a few queries per portion.

`recipient_contexts(items)` loads the target records of a whole portion (one query
per target type, one-hop foreign keys joined, plus one for addresses when the items
came without them), never one query per item; `context_for()` makes one context
outside a queue (previews, Send Test to a typed address).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import models

from massmail.models import QueueItem
from massmail.placeholders import display, one_hop_fields
from targets.models import EmailAddress
from targets.registry import TargetType, target_type_for

# Records fetched per query when a portion is large (SQLite's parameter limit).
_CHUNK = 2000


@dataclass(slots=True)
class RecipientContext:
    """What placeholders need about one recipient, loaded for a whole portion at once.

    `target` is the target record with its one-hop foreign keys already joined
    (None for a typed test address, or when the record was deleted: then
    `target_missing` is True). `type_key` is the registry key (Contact, Lead,
    Account, User or a custom model's class name).
    """

    address: str
    target: models.Model | None = None
    type_key: str | None = None
    is_person: bool = False
    name: str = ""
    target_missing: bool = False

    def value(self, field: str) -> str:
        """A field of the target by its model name (first_name), "" when absent."""
        return display(getattr(self.target, field, None)) if self.target is not None else ""


def display_name(record: models.Model | None) -> str:
    """A person's "First Last", a company's name; "" when the record has neither."""
    if record is None:
        return ""
    first, last = getattr(record, "first_name", None), getattr(record, "last_name", None)
    if first is not None or last is not None:
        return " ".join(part for part in (first, last) if part)
    name = getattr(record, "name", None)
    return str(name) if isinstance(name, str) else ""


def recipient_contexts(items: Sequence[QueueItem]) -> dict[int, RecipientContext]:
    """Contexts keyed by queue item id: one query per target type (plus one for
    addresses when the items were loaded without them), never one per item."""
    _load_addresses(items)
    types = {
        content_type_id: target_type_for(content_type_id)
        for content_type_id in {item.content_type_id for item in items if item.content_type_id}
    }
    records = _load_records(items, types)
    return {item.id: _context(item, records, types) for item in items}


def context_for(address: str, record: models.Model | None = None) -> RecipientContext:
    """A context for one recipient outside a queue (previews, tests)."""
    target_type = target_type_for(type(record)) if record is not None else None
    return _with_target(address, record, target_type)


def _with_target(
    address: str,
    record: models.Model | None,
    target_type: TargetType | None,
    *,
    target_missing: bool = False,
) -> RecipientContext:
    return RecipientContext(
        address=address,
        target=record,
        type_key=target_type.key if target_type else None,
        is_person=bool(target_type and target_type.is_person),
        name=display_name(record),
        target_missing=target_missing,
    )


def _load_addresses(items: Sequence[QueueItem]) -> None:
    field = QueueItem._meta.get_field("email_address")
    missing = [item for item in items if not field.is_cached(item)]
    if not missing:
        return
    found = EmailAddress.objects.in_bulk({item.email_address_id for item in missing})
    for item in missing:
        item.email_address = found[item.email_address_id]


def _load_records(
    items: Sequence[QueueItem], types: dict[int, TargetType | None]
) -> dict[tuple[int, int], models.Model]:
    wanted: dict[int, set[int]] = defaultdict(set)
    for item in items:
        if item.content_type_id and item.object_id is not None:
            wanted[item.content_type_id].add(item.object_id)
    records: dict[tuple[int, int], models.Model] = {}
    for content_type_id, ids in wanted.items():
        target_type = types[content_type_id]
        if target_type is None:
            continue
        model = target_type.model
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            queryset = model._default_manager.filter(pk__in=ordered[start : start + _CHUNK])
            for record in queryset.select_related(*one_hop_fields(model)):
                records[(content_type_id, record.pk)] = record
    return records


def _context(
    item: QueueItem,
    records: dict[tuple[int, int], models.Model],
    types: dict[int, TargetType | None],
) -> RecipientContext:
    address = item.email_address.address
    if not item.content_type_id:
        return RecipientContext(address=address)
    record = records.get((item.content_type_id, item.object_id))
    return _with_target(address, record, types[item.content_type_id], target_missing=record is None)
