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
  {Person.firstName|there}   a field with a fallback: "there" when the recipient's
      value is empty or its type has no such field (`{Person.firstName|}` says
      that empty is fine); the fallback is plain text, HTML entities allowed
Keys starting with "@" are inserted by the composer itself (open pixel, hidden link).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q
from django.utils import timezone

from targets.registry import TargetType, target_type_by_key, target_types
from tracking import links
from tracking.models import TrackingUrl

if TYPE_CHECKING:
    from campaigns.models import Campaign, EmailTemplate
    from massmail.models import MassEmail, QueueItem
    from massmail.recipients import RecipientContext

# What the segmenter treats as a placeholder. CSS such as `a{color:red}` or
# `{ margin: 0 }` never matches: names are bare identifiers joined by dots, then
# perhaps "|" and a fallback text on the same line.
PLACEHOLDER_RE = re.compile(
    r"\{(@?[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*(?:\|[^{}|\r\n]*)?"
    r"|trackingUrl:[^{}\s]*)\}"
)
FALLBACK = "|"

OPT_OUT_KEYS = frozenset({"optOutUrl", "optOutLink"})
BODY_ONLY_KEYS = frozenset({"optOutUrl", "optOutLink", "queueItemId"})
OPEN_PIXEL_KEY = "@openPixelUrl"
TRAP_KEY = "@trapUrl"
PERSON = "Person"
PERSON_BASICS = ("firstName", "lastName", "name", "emailAddress")
# Never exposed in a message, whatever a template asks for.
HIDDEN_FIELDS = frozenset({"password"})

Getter = Callable[["QueueItem", "RecipientContext"], str]


class CompositionError(ValueError):
    """The mass email cannot be composed; `errors` says why, for a person to fix."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class PlaceholderError(ValueError):
    """A placeholder that cannot be rendered; the message says which and why."""


def split(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Literal segments and the placeholder keys between them (len(literals) = keys + 1)."""
    parts = PLACEHOLDER_RE.split(text)
    return tuple(parts[0::2]), tuple(parts[1::2])


def keys_in(text: str) -> list[str]:
    return PLACEHOLDER_RE.findall(text)


def without_fallback(key: str) -> str:
    """Person.firstName|there -> Person.firstName"""
    return key.partition(FALLBACK)[0]


def takes_fallback(name: str) -> bool:
    """Only a recipient's fields can be empty; links and dates never are."""
    return "." in name and not name.startswith("@")


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
        name, bar, fallback = key.partition(FALLBACK)
        if not bar:
            return self._getter(key, in_subject=in_subject)
        if not takes_fallback(name):
            raise PlaceholderError(
                f"{{{key}}}: only a recipient's fields take a fallback, "
                "as in {Person.firstName|there}."
            )
        value = self._getter(name, in_subject=in_subject)
        text = html.unescape(fallback)
        return lambda item, context: value(item, context) or text

    def _getter(self, key: str, *, in_subject: bool) -> Getter:
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
                "use one of this mass email's campaign or a shared one."
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


# -- what the template editor offers ---------------------------------------------------


GENERAL_CODES = ("emailAddress", "today", "now", "currentYear", "optOutUrl", "optOutLink")


def camel(name: str) -> str:
    """first_name -> firstName: how templates name fields."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def picker_codes() -> list[tuple[str, list[str]]]:
    """The placeholders a template may use, grouped for the editor's picker: the
    general ones, Person (what every type has a value for), then each target type's
    own fields."""
    groups = [
        ("General", [f"{{{key}}}" for key in GENERAL_CODES]),
        (PERSON, [f"{{{PERSON}.{attribute}}}" for attribute in PERSON_BASICS]),
    ]
    for target_type in target_types():
        model = target_type.model
        readable = _readable_fields(model) - {"id"}
        fields = ["emailAddress", *sorted(camel(f) for f in readable)]
        fields += [
            f"{camel(link)}.name" for link in sorted(_links(model)) if _has_name(model, link)
        ]
        groups.append((target_type.key, [f"{{{target_type.key}.{f}}}" for f in fields]))
    return groups


def _has_name(model: type[models.Model], link: str) -> bool:
    return "name" in _readable_fields(_links(model)[link])


# -- which recipients get an empty value ------------------------------------------------


def empty_condition(key: str, target_type: TargetType) -> Q | None:
    """The records of `target_type` for which a valid key renders as "" (None: never).

    Mirrors the getters above as a filter, so that the pre-send check counts
    recipients in SQL. A key with a fallback is never empty.
    """
    name, bar, _ = key.partition(FALLBACK)
    if bar or not takes_fallback(name):
        return None
    head, _, path = name.partition(".")
    model = target_type.model
    if path == "emailAddress":
        return None if head in (PERSON, target_type.key) else EVERY_RECORD
    if head == PERSON:
        return _person_empty(model, target_type.is_person, path)
    if head != target_type.key:
        return EVERY_RECORD
    first, _, second = path.partition(".")
    if not second:
        return _blank(model, snake(first))
    link = snake(first)
    related = _links(model)[link]
    return Q(**{f"{link}__isnull": True}) | _blank(related, snake(second), prefix=f"{link}__")


# Matches every row: the value is empty whatever the record holds.
EVERY_RECORD = Q(pk__isnull=False)


def _person_empty(model: type[models.Model], is_person: bool, attribute: str) -> Q:
    if not is_person:
        # A company's name stands for name and lastName; it has no other person field.
        return _blank(model, "name") if attribute in ("name", "lastName") else EVERY_RECORD
    if attribute == "name":
        return _blank(model, "first_name") & _blank(model, "last_name")
    return _blank(model, snake(attribute))


def _blank(model: type[models.Model], field_name: str, prefix: str = "") -> Q:
    try:
        field = model._meta.get_field(field_name)
    except FieldDoesNotExist:
        if field_name == "name" and isinstance(getattr(model, "name", None), property):
            return _blank(model, "first_name", prefix) & _blank(model, "last_name", prefix)
        return EVERY_RECORD
    empty = Q(**{f"{prefix}{field_name}__isnull": True})
    if isinstance(field, models.CharField | models.TextField):
        empty |= Q(**{f"{prefix}{field_name}": ""})
    return empty


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


# {optOutLink} as an attribute value would put an <a> element inside an attribute.
_LINK_IN_ATTRIBUTE = re.compile(r"=\s*[\"']?\{optOutLink\}")


# -- validating templates and mass emails ------------------------------------------


def validate_template(template: EmailTemplate, campaign: Campaign | None = None) -> list[str]:
    """Errors for placeholders in the template that would not render; [] when fine.

    With a campaign, {trackingUrl:<id>} must be one of its tracking URLs or a shared
    one; without, it must exist at all.
    """
    bodies = [template.body_html or "", template.body_text or ""]
    errors = template_errors(template.subject or "", bodies, resolver_for(bodies, campaign))
    if _LINK_IN_ATTRIBUTE.search(bodies[0]):
        errors.append('{optOutLink} is a whole link; inside href="..." use {optOutUrl}.')
    return errors


def validate_mass_email(mass_email: MassEmail) -> list[str]:
    """Errors that would make the mass email's messages wrong; [] when fine."""
    campaign = mass_email.campaign
    template = mass_email.email_template
    errors = validate_template(template, campaign)
    if campaign.is_informational:
        used = set(keys_in(template.body_html or "")) | set(keys_in(template.body_text or ""))
        for key in sorted(used & OPT_OUT_KEYS):
            errors.append(
                f"{{{key}}}: informational emails have no unsubscribe page; remove the link."
            )
    return errors


def resolver_for(bodies: list[str], campaign: Campaign | None, site_url: str = "") -> Resolver:
    """A resolver that allows the campaign's tracking URLs (any existing one without, or
    with a campaign not saved yet: a template previewed on its own)."""
    named = {
        int(key.partition(":")[2])
        for body in bodies
        for key in keys_in(body)
        if key.startswith("trackingUrl:") and key.partition(":")[2].isdigit()
    }
    existing = dict(TrackingUrl.objects.filter(pk__in=named).values_list("pk", "campaign_id"))
    if campaign is None or campaign.pk is None:
        return Resolver(site_url, tracking_urls=existing)
    # A shared tracking URL (no campaign) is every campaign's.
    mine = (campaign.pk, None)
    allowed = [pk for pk, campaign_id in existing.items() if campaign_id in mine]
    foreign = [pk for pk, campaign_id in existing.items() if campaign_id not in mine]
    return Resolver(site_url, tracking_urls=allowed, foreign_tracking_urls=foreign)
