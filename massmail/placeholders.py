"""Placeholders in templates: finding them, checking them, and looking up their values.

A template is split once per mass email into literal text and placeholder keys
(`split`); each key is resolved once into a small function `(item, context) -> str`
(`Resolver.getter`), so that per recipient there are only attribute lookups.
The values a portion of recipients needs come from `recipient_contexts`, a few
queries per portion (one per target type), never one per item.

Keys a marketer writes:
  {Person.firstName} {Person.lastName} {Person.name}   any person-type target; for a
      company-type target name and lastName are its name, firstName is empty
  {Contact.firstName} {Lead.accountName} {User.email} {Partner.region} ...
      the fields of a registered target type, in camelCase (empty for other types)
  {Contact.account.name}   a field of a record one foreign key away
  {emailAddress} {queueItemId} {today} {now} {currentYear}
  {optOutUrl} {optOutLink} {trackingUrl:<id>}   body only
Keys starting with "@" are inserted by the composer itself (open pixel, hidden link).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from targets.registry import TargetType, target_type_by_key, target_type_for, target_types
from tracking import links

if TYPE_CHECKING:
    from massmail.models import QueueItem

# What the segmenter treats as a placeholder. CSS such as `a{color:red}` or
# `{ margin: 0 }` never matches: names are bare identifiers joined by dots.
PLACEHOLDER_RE = re.compile(
    r"\{(@?[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*|trackingUrl:[^{}\s]*)\}"
)

OPT_OUT_KEYS = frozenset({"optOutUrl", "optOutLink"})
BODY_ONLY_KEYS = frozenset({"optOutUrl", "optOutLink", "queueItemId"})
OPEN_PIXEL_KEY = "@openPixelUrl"
TRAP_KEY = "@trapUrl"
PERSON = "Person"
PERSON_BASICS = ("firstName", "lastName", "name", "emailAddress")
# Never exposed in a message, whatever a template asks for.
HIDDEN_FIELDS = frozenset({"password"})
# Records fetched per query when a portion is large (SQLite's parameter limit).
_CHUNK = 2000

Getter = Callable[["QueueItem", "RecipientContext"], str]


class PlaceholderError(ValueError):
    """A placeholder that cannot be rendered; the message says which and why."""


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


def split(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Literal segments and the placeholder keys between them (len(literals) = keys + 1)."""
    parts = PLACEHOLDER_RE.split(text)
    return tuple(parts[0::2]), tuple(parts[1::2])


def keys_in(text: str) -> list[str]:
    return PLACEHOLDER_RE.findall(text)


def display(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value.tzinfo else str(value)
    return str(value)


def snake(name: str) -> str:
    """firstName -> first_name, accountName -> account_name (snake_case stays as it is)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def display_name(record: models.Model | None) -> str:
    """A person's "First Last", a company's name; "" when the record has neither."""
    if record is None:
        return ""
    first, last = getattr(record, "first_name", None), getattr(record, "last_name", None)
    if first is not None or last is not None:
        return " ".join(part for part in (first, last) if part)
    name = getattr(record, "name", None)
    return str(name) if isinstance(name, str) else ""


# -- which attributes a template may name ------------------------------------------


def _readable_fields(model: type[models.Model]) -> set[str]:
    names = {
        field.name
        for field in model._meta.concrete_fields
        if not field.is_relation and field.name not in HIDDEN_FIELDS
    }
    # `name` is a plain property on persons (first + last); allowed when it exists.
    if isinstance(getattr(model, "name", None), property):
        names.add("name")
    return names


def _links(model: type[models.Model]) -> dict[str, type[models.Model]]:
    """Forward one-hop links: foreign keys and one-to-one fields, by name."""
    return {
        field.name: field.related_model
        for field in model._meta.concrete_fields
        if field.is_relation and (field.many_to_one or field.one_to_one)
    }


def one_hop_fields(model: type[models.Model]) -> list[str]:
    return list(_links(model))


# -- global values --------------------------------------------------------------------

_clock: tuple[tuple[int, str], dict[str, str]] = ((-1, ""), {})


def clock_values() -> dict[str, str]:
    """today/now/currentYear in TIME_ZONE, computed at most once a second."""
    global _clock
    key = (int(time.time()), settings.TIME_ZONE)
    cached_key, cached = _clock
    if cached_key != key:
        now = timezone.localtime()
        cached = {
            "today": now.strftime("%Y-%m-%d"),
            "now": now.strftime("%Y-%m-%d %H:%M"),
            "currentYear": str(now.year),
        }
        _clock = (key, cached)
    return cached


def _clock_getter(key: str) -> Getter:
    return lambda item, context: clock_values()[key]


# -- resolving keys into getters --------------------------------------------------------


class Resolver:
    """Turns placeholder keys into getters, or explains why a key is not allowed.

    `tracking_urls` maps the ids allowed in {trackingUrl:<id>} to None; ids that
    exist but belong elsewhere are given in `foreign_tracking_urls` so the error
    can say so. With `tracking_urls=None` any existing tracking URL is allowed
    (a template checked on its own, without a campaign).
    """

    def __init__(
        self,
        site_url: str = "",
        tracking_urls: Iterable[int] | None = None,
        foreign_tracking_urls: Iterable[int] = (),
    ) -> None:
        self.links = links.Links(site_url)
        self.tracking_urls = None if tracking_urls is None else set(tracking_urls)
        self.foreign_tracking_urls = set(foreign_tracking_urls)

    def check(self, key: str, *, in_subject: bool = False) -> str | None:
        """An error message for the key, or None when it can be rendered."""
        try:
            self.getter(key, in_subject=in_subject)
        except PlaceholderError as error:
            return str(error)
        return None

    def getter(self, key: str, *, in_subject: bool = False) -> Getter:
        if in_subject and (key in BODY_ONLY_KEYS or key.startswith("trackingUrl:")):
            raise PlaceholderError(f"{{{key}}} can only be used in the body, not the subject.")
        if key.startswith("trackingUrl:"):
            return self._tracking_getter(key)
        simple = self._simple_getter(key)
        if simple is not None:
            return simple
        head, _, rest = key.partition(".")
        if not rest:
            raise PlaceholderError(f"Unknown placeholder {{{key}}}.")
        if head == PERSON:
            return self._person_getter(key, rest)
        target_type = target_type_by_key(head)
        if target_type is None or target_type.key != head:
            known = ", ".join([PERSON, *(t.key for t in target_types())])
            raise PlaceholderError(f"Unknown placeholder {{{key}}}: {head} is not one of {known}.")
        return self._field_getter(key, target_type, rest)

    def _simple_getter(self, key: str) -> Getter | None:
        signed = self.links
        if key in ("today", "now", "currentYear"):
            return _clock_getter(key)
        if key == "emailAddress":
            return lambda item, context: context.address
        if key == "queueItemId":
            return lambda item, context: str(item.uid)
        if key in OPT_OUT_KEYS:
            # {optOutLink} is the same URL; the HTML body wraps it in <a>.
            return lambda item, context: signed.unsubscribe_url(item.uid)
        if key == OPEN_PIXEL_KEY:
            return lambda item, context: signed.open_pixel_url(item.uid)
        if key == TRAP_KEY:
            return lambda item, context: signed.trap_url(item.uid)
        return None

    def _tracking_getter(self, key: str) -> Getter:
        raw_id = key.partition(":")[2]
        if not raw_id.isdigit():
            raise PlaceholderError(f"{{{key}}}: a tracking URL is named by its number.")
        url_id = int(raw_id)
        if url_id in self.foreign_tracking_urls:
            raise PlaceholderError(
                f"{{{key}}} is a tracking URL of another campaign; "
                "use one of this mass email's campaign."
            )
        if self.tracking_urls is not None and url_id not in self.tracking_urls:
            raise PlaceholderError(f"{{{key}}}: there is no tracking URL {url_id}.")
        signed = self.links
        return lambda item, context: signed.click_url(item.uid, url_id)

    def _person_getter(self, key: str, attribute: str) -> Getter:
        if attribute == "emailAddress":
            return lambda item, context: context.address
        if attribute == "name":
            return lambda item, context: context.name
        field = snake(attribute)
        person_fields = set().union(
            *(_readable_fields(t.model) for t in target_types() if t.is_person)
        )
        if attribute not in PERSON_BASICS and field not in person_fields:
            raise PlaceholderError(f"Unknown placeholder {{{key}}}: no person type has {field}.")
        if field == "last_name":
            # A company has no first name; its whole name stands as the last name.
            return lambda item, context: context.value(field) if context.is_person else context.name
        return lambda item, context: context.value(field) if context.is_person else ""

    def _field_getter(self, key: str, target_type: TargetType, path: str) -> Getter:
        type_key = target_type.key
        if path == "emailAddress":
            return lambda item, context: context.address if context.type_key == type_key else ""
        first, _, second = path.partition(".")
        if "." in second:
            raise PlaceholderError(f"{{{key}}}: links reach one record away, not more.")
        model = target_type.model
        field = snake(first)
        if not second:
            if field in _readable_fields(model):
                return _attribute_getter(type_key, _shown_as(model, field))
            if field in _links(model):
                return _linked_getter(type_key, field, None)
            raise PlaceholderError(f"Unknown placeholder {{{key}}}: {type_key} has no {field}.")
        related = _links(model).get(field)
        if related is None:
            raise PlaceholderError(
                f"Unknown placeholder {{{key}}}: {type_key} has no link {field}."
            )
        related_field = snake(second)
        if related_field not in _readable_fields(related):
            raise PlaceholderError(
                f"Unknown placeholder {{{key}}}: {related.__name__} has no {related_field}."
            )
        return _linked_getter(type_key, field, related_field)


def _shown_as(model: type[models.Model], field: str) -> str:
    """The attribute to read: a field with choices reads as its label ("New", not "new")."""
    if field != "name" and model._meta.get_field(field).choices:
        return f"get_{field}_display"
    return field


def _attribute_getter(type_key: str, attribute: str) -> Getter:
    if attribute.startswith("get_") and attribute.endswith("_display"):
        return lambda item, context: (
            str(getattr(context.target, attribute)())
            if context.type_key == type_key and context.target is not None
            else ""
        )
    return lambda item, context: context.value(attribute) if context.type_key == type_key else ""


def _linked_getter(type_key: str, link: str, field: str | None) -> Getter:
    def get(item: QueueItem, context: RecipientContext) -> str:
        if context.type_key != type_key or context.target is None:
            return ""
        related = getattr(context.target, link)  # joined by recipient_contexts
        if related is None or field is None:
            return display(related)
        return display(getattr(related, field, None))

    return get


# -- checking a template ----------------------------------------------------------------


def template_errors(subject: str, bodies: Sequence[str], resolver: Resolver) -> list[str]:
    """Human-readable errors for every placeholder that would not render, once each."""
    errors: list[str] = []
    for text, in_subject in [(subject, True), *((body, False) for body in bodies)]:
        for key in keys_in(text or ""):
            error = (
                f"Unknown placeholder {{{key}}}."
                if key.startswith("@")
                else resolver.check(key, in_subject=in_subject)
            )
            if error and error not in errors:
                errors.append(error)
    return errors


# -- loading recipients -------------------------------------------------------------------


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
    return RecipientContext(
        address=address,
        target=record,
        type_key=target_type.key if target_type else None,
        is_person=bool(target_type and target_type.is_person),
        name=display_name(record),
    )


def _load_addresses(items: Sequence[QueueItem]) -> None:
    from massmail.models import QueueItem
    from targets.models import EmailAddress

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
    target_type = types[item.content_type_id]
    record = records.get((item.content_type_id, item.object_id))
    return RecipientContext(
        address=address,
        target=record,
        type_key=target_type.key if target_type else None,
        is_person=bool(target_type and target_type.is_person),
        name=display_name(record),
        target_missing=record is None,
    )
