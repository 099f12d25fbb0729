"""Excluding target lists: a record is excluded when it, or any record sharing one of its
email addresses, is a member of an excluding list. Queue building and list tools use
this as a subquery, so it stays one SQL statement however large the lists are.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, OuterRef, QuerySet

from targets.models import RecordEmailAddress, TargetListMember


def excluded_address_ids(excluding_list_ids: Iterable[int]) -> QuerySet:
    """Ids of every EmailAddress linked to a member of the excluding lists."""
    members = TargetListMember.objects.filter(
        target_list_id__in=list(excluding_list_ids),
        content_type_id=OuterRef("content_type_id"),
        object_id=OuterRef("object_id"),
    )
    return RecordEmailAddress.objects.filter(Exists(members)).values("email_address_id").distinct()


def is_excluded(record_links: QuerySet, excluding_list_ids: Iterable[int]) -> QuerySet:
    """Narrow RecordEmailAddress rows to those whose address is excluded."""
    return record_links.filter(email_address_id__in=excluded_address_ids(excluding_list_ids))
