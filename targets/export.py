"""CSV export of a target list, streamed: members are read through a server-side
cursor in chunks and names resolved with one query per target type per chunk, so
a million members never sit in memory at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from itertools import islice

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import OuterRef, Subquery
from django.http import StreamingHttpResponse
from django.utils.text import slugify

from config.csv_export import csv_download
from targets.models import RecordEmailAddress, TargetList
from targets.registry import target_type_for

HEADER = ["address", "name", "type", "opted_out"]
CHUNK_SIZE = 2000


def display_name(record: models.Model) -> str:
    """A record's name for people reading a list: users by full name, others by name."""
    if isinstance(record, get_user_model()):
        return record.get_full_name() or record.get_username()
    name = getattr(record, "name", None)
    return str(name) if name else str(record)


def with_primary_address(queryset: models.QuerySet) -> models.QuerySet:
    links = RecordEmailAddress.objects.filter(
        content_type=ContentType.objects.get_for_model(queryset.model),
        object_id=OuterRef("pk"),
        primary=True,
    )
    return queryset.annotate(
        primary_email_address=Subquery(links.values("email_address__address")[:1])
    )


def member_rows(target_list: TargetList, chunk_size: int = CHUNK_SIZE) -> Iterator[list[str]]:
    """[address, name, type, opted_out] for every member, in (type, id) order."""
    members = (
        target_list.members.order_by("content_type_id", "object_id")
        .values_list("content_type_id", "object_id", "opted_out")
        .iterator(chunk_size=chunk_size)
    )
    while chunk := list(islice(members, chunk_size)):
        yield from _resolve_chunk(chunk)


def _resolve_chunk(chunk: list[tuple[int, int, bool]]) -> Iterator[list[str]]:
    ids_by_type: dict[int, list[int]] = defaultdict(list)
    for content_type_id, object_id, _ in chunk:
        ids_by_type[content_type_id].append(object_id)
    records = {
        content_type_id: _records(content_type_id, ids)
        for content_type_id, ids in ids_by_type.items()
    }
    for content_type_id, object_id, opted_out in chunk:
        record = records[content_type_id][1].get(object_id)
        address = getattr(record, "primary_email_address", None) or ""
        name = display_name(record) if record is not None else ""
        yield [address, name, records[content_type_id][0], "yes" if opted_out else "no"]


def _records(content_type_id: int, ids: list[int]) -> tuple[str, dict[int, models.Model]]:
    content_type = ContentType.objects.get_for_id(content_type_id)
    model = content_type.model_class()
    if model is None:  # the type's app is gone; keep the row, say what it was
        return content_type.model, {}
    target_type = target_type_for(model)
    key = target_type.key if target_type else model.__name__
    return key, with_primary_address(model.objects.filter(pk__in=ids)).in_bulk()


def export_response(target_list: TargetList) -> StreamingHttpResponse:
    filename = slugify(target_list.name) or f"target-list-{target_list.pk}"
    return csv_download(HEADER, member_rows(target_list), f"{filename}.csv")
