"""The message a chosen recipient will receive, rendered by the sender's own code.

A recipient is a queue item of the mass email ("item:<id>") or a record picked
from its target lists before the queue exists ("record:<content type>:<id>").
Both go through `massmail.composition.prepare(...).render(item, context)`, the
call the sender makes, so subject, bodies and headers are what will go out;
only the Date and Message-ID differ from one render to the next.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import connection
from django.db.models import Exists, OuterRef

from campaigns.models import Campaign, EmailTemplate
from massmail.composition import Rendered, prepare
from massmail.models import MassEmail, OutboundSettings, QueueItem
from massmail.placeholders import OPEN_PIXEL_KEY, TRAP_KEY, CompositionError
from massmail.queue import recipients_sql
from massmail.recipients import context_for, recipient_contexts
from targets.models import (
    EmailAddress,
    RecordEmailAddress,
    TargetListMember,
    normalize_address,
    primary_email_of,
)
from targets.registry import target_type_for, target_types

CANDIDATES = 20


@dataclass(frozen=True)
class Recipient:
    key: str
    label: str


@dataclass(frozen=True)
class Preview:
    recipient: Recipient
    rendered: Rendered
    queued: bool  # False: a list member before the queue is built (links are not live)
    html_for_frame: str  # the HTML with the pixel and hidden link defused (see below)

    @property
    def source(self) -> str:
        return self.rendered.raw.decode("utf-8", "replace")


def target_list_ids(mass_email: MassEmail) -> list[int]:
    ids = list(mass_email.target_lists.values_list("pk", flat=True))
    return ids or list(mass_email.campaign.target_lists.values_list("pk", flat=True))


def candidates(mass_email: MassEmail, limit: int = CANDIDATES) -> list[Recipient]:
    """A few recipients to choose from: queue items if the queue exists, else list members."""
    items = (
        mass_email.queue_items.filter(is_test=False)
        .select_related("email_address")
        .order_by("pk")[:limit]
    )
    found = [Recipient(f"item:{item.pk}", f"{item.email_address} (queued)") for item in items]
    if found:
        return found
    return [
        Recipient(
            f"record:{content_type.pk}:{record.pk}", f"{address} ({content_type.model} {record})"
        )
        for content_type, record, address in _would_receive(mass_email, limit)
    ]


def _would_receive(mass_email: MassEmail, limit: int):
    """The first recipients a queue build would queue now (the queue's own query): never an
    excluded, opted-out or invalid address."""
    recipients = recipients_sql(mass_email)
    if recipients is None:
        return []
    sql, params = recipients
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT content_type_id, object_id, email_address_id FROM"
            f" ({sql}) r ORDER BY type_order, list_order, object_id LIMIT %s",
            [*params, limit],
        )
        rows = cursor.fetchall()
    addresses = EmailAddress.objects.in_bulk([row[2] for row in rows])
    found = []
    for content_type_id, object_id, address_id in rows:
        content_type = ContentType.objects.get_for_id(content_type_id)
        record = content_type.model_class()._default_manager.filter(pk=object_id).first()
        if record is not None:
            found.append((content_type, record, addresses[address_id]))
    return found


def _members(mass_email: MassEmail):
    return TargetListMember.objects.filter(target_list__in=target_list_ids(mass_email))


def _primary_address(content_type, object_id, **filters):
    return RecordEmailAddress.objects.filter(
        content_type=content_type, object_id=object_id, primary=True, **filters
    )


def key_for_address(mass_email: MassEmail, address: str) -> str | None:
    """The recipient with this address: its queue item, else a list member using it."""
    address = normalize_address(address)
    item = (
        mass_email.queue_items.filter(is_test=False, email_address__address=address)
        .values_list("pk", flat=True)
        .first()
    )
    if item is not None:
        return f"item:{item}"
    using = _primary_address(
        OuterRef("content_type"), OuterRef("object_id"), email_address__address=address
    )
    member = (
        _members(mass_email)
        .filter(Exists(using))
        .order_by("pk")
        .values_list("content_type_id", "object_id")
        .first()
    )
    return f"record:{member[0]}:{member[1]}" if member else None


def preview(mass_email: MassEmail, key: str) -> Preview:
    """Render the message for a recipient key; ValidationError says what is wrong with it.

    CompositionError (a ValueError) propagates: the template cannot be rendered.
    """
    kind, _, rest = key.partition(":")
    if kind == "item":
        item, context, label = _queued(mass_email, rest)
        queued = True
    elif kind == "record":
        item, context, label = _member(mass_email, rest)
        queued = False
    else:
        raise ValidationError(f"Unknown recipient {key!r}.")
    prepared = prepare(mass_email)
    rendered = prepared.render(item, context)
    frame = _defused(rendered.html, prepared, item, context)
    return Preview(Recipient(key, label), rendered, queued, frame)


def _queued(mass_email: MassEmail, pk: str):
    try:
        item = mass_email.queue_items.select_related("email_address").get(pk=int(pk))
    except (ValueError, QueueItem.DoesNotExist):
        raise ValidationError(f"No queue item {pk} in this mass email.") from None
    context = recipient_contexts([item])[item.pk]
    return item, context, f"{item.email_address} (queued)"


def _member(mass_email: MassEmail, rest: str):
    try:
        content_type_id, object_id = (int(part) for part in rest.split(":"))
        content_type = ContentType.objects.get_for_id(content_type_id)
        record = content_type.get_object_for_this_type(pk=object_id)
    except (ValueError, ObjectDoesNotExist):
        raise ValidationError(f"No such record {rest!r}.") from None
    in_lists = TargetListMember.objects.filter(
        target_list__in=target_list_ids(mass_email),
        content_type=content_type,
        object_id=object_id,
    ).exists()
    if not in_lists:
        raise ValidationError(f"{record} is not in this mass email's target lists.")
    address = primary_email_of(record)
    if address is None:
        raise ValidationError(f"{record} has no primary email address.")
    # Not saved: a stand-in with a fresh uid, so links are signed but lead nowhere.
    item = QueueItem(
        mass_email=mass_email,
        content_type=content_type,
        object_id=object_id,
        email_address=address,
        uid=uuid.uuid4(),
    )
    return item, context_for(address.address, record), f"{address} ({record})"


def _defused(body: str, prepared, item: QueueItem, context) -> str:
    """The HTML for the preview frame, with the open pixel and the hidden trap link
    pointed nowhere: showing a queued recipient's message must not record an open
    (or a machine hit) for them."""
    for key in (OPEN_PIXEL_KEY, TRAP_KEY):
        getter = prepared.getters.get(key)
        if getter is None:
            continue
        url = getter(item, context)
        for form in {url, html.escape(url), html.escape(url, quote=False)}:
            body = body.replace(form, "about:blank")
    return body


# -- a template on its own, while it is written ---------------------------------------

SAMPLES_PER_TYPE = 3


@dataclass(frozen=True)
class TemplatePreview:
    subject: str
    html: str  # for the editor's frame: pixel and hidden link defused
    errors: list[str]


def sample_recipients(per_type: int = SAMPLES_PER_TYPE) -> list[Recipient]:
    """A few records of each target type that have an address, to preview a template
    with: a company shows what a person placeholder gives when there is no person."""
    samples = []
    for target_type in target_types():
        links = (
            RecordEmailAddress.objects.filter(content_type=target_type.content_type, primary=True)
            .select_related("email_address")
            .order_by("object_id")[:per_type]
        )
        links = list(links)
        records = target_type.model._default_manager.in_bulk([link.object_id for link in links])
        samples += [
            Recipient(
                f"record:{link.content_type_id}:{link.object_id}",
                f"{records[link.object_id]} <{link.email_address}> ({target_type.key})",
            )
            for link in links
            if link.object_id in records
        ]
    return samples


def template_preview(
    template: EmailTemplate, key: str, outbound: OutboundSettings | None = None
) -> TemplatePreview:
    """A draft template rendered for a sample recipient by the sender's own code, as
    a newsletter of a campaign not saved yet (so any tracking URL may be named).

    ValidationError when the recipient key is not a record with an address.
    """
    record, address = _sample(key)
    campaign = Campaign(name="Preview", type=Campaign.Type.NEWSLETTER)
    mass_email = MassEmail(
        campaign=campaign, name="Preview", email_template=template, from_address=""
    )
    try:
        prepared = prepare(mass_email, outbound=outbound)
    except CompositionError as broken:
        return TemplatePreview("", "", broken.errors)
    item = QueueItem(mass_email=mass_email, email_address=address, uid=uuid.uuid4())
    context = context_for(address.address, record)
    rendered = prepared.render(item, context)
    return TemplatePreview(rendered.subject, _defused(rendered.html, prepared, item, context), [])


def _sample(key: str):
    kind, _, rest = key.partition(":")
    try:
        if kind != "record":
            raise ValueError
        content_type_id, object_id = (int(part) for part in rest.split(":"))
        target_type = target_type_for(content_type_id)
        if target_type is None:
            raise ValueError
        record = target_type.model._default_manager.get(pk=object_id)
    except (ValueError, ObjectDoesNotExist):
        raise ValidationError(f"No such recipient {key!r}.") from None
    address = primary_email_of(record)
    if address is None:
        raise ValidationError(f"{record} has no primary email address.")
    return record, address
