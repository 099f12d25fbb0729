"""Adding and removing a selection of records to and from a target list, set-based.

A selection is any queryset of one target type: the admin's filtered change list
(with "select all N results"), a saved segment. Each operation is one SQL
statement over the queryset's own SQL, so its cost does not grow with Python
loops: 100,000 selected contacts are one INSERT ... SELECT.
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone

from targets.models import RecordEmailAddress, TargetList, TargetListMember, normalize_address

MEMBERS = TargetListMember._meta.db_table


def selection_sql(queryset: QuerySet) -> tuple[str, tuple]:
    """A subquery selecting the queryset's primary keys as one column `pk`, and its params.

    The CTE's column list renames whatever the compiled query calls its pk column.
    """
    query = queryset.order_by().values("pk").query
    sql, params = query.get_compiler(using=queryset.db).as_sql()
    return f"WITH selection(pk) AS ({sql}) SELECT pk FROM selection", params


def add_selection(target_list: TargetList, queryset: QuerySet) -> int:
    """Add every record of the queryset; members already in the list keep their flags.

    Returns how many were added.
    """
    connection = connections[queryset.db]
    select_sql, params = selection_sql(queryset)
    content_type = ContentType.objects.get_for_model(queryset.model)
    insert = "INSERT OR IGNORE INTO" if connection.vendor == "sqlite" else "INSERT INTO"
    conflict = "" if connection.vendor == "sqlite" else " ON CONFLICT DO NOTHING"
    sql = (
        f"{insert} {MEMBERS} (target_list_id, content_type_id, object_id, opted_out, added_at)"
        f" SELECT %s, %s, chosen.pk, %s, %s FROM ({select_sql}) chosen{conflict}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [target_list.pk, content_type.pk, False, timezone.now(), *params])
        return cursor.rowcount


def remove_selection(target_list: TargetList, queryset: QuerySet) -> int:
    """Remove every record of the queryset from the list; returns how many were removed."""
    select_sql, params = selection_sql(queryset)
    content_type = ContentType.objects.get_for_model(queryset.model)
    sql = (
        f"DELETE FROM {MEMBERS} WHERE target_list_id = %s AND content_type_id = %s"
        f" AND object_id IN ({select_sql})"
    )
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, [target_list.pk, content_type.pk, *params])
        return cursor.rowcount


def keep_only_selection(target_list: TargetList, queryset: QuerySet) -> int:
    """Remove every member that is not a record of the queryset (of any type).

    Members that stay are untouched, so their opted-out flags survive.
    """
    select_sql, params = selection_sql(queryset)
    content_type = ContentType.objects.get_for_model(queryset.model)
    sql = (
        f"DELETE FROM {MEMBERS} WHERE target_list_id = %s AND NOT (content_type_id = %s"
        f" AND EXISTS (SELECT 1 FROM ({select_sql}) chosen"
        f" WHERE chosen.pk = {MEMBERS}.object_id))"
    )
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, [target_list.pk, content_type.pk, *params])
        return cursor.rowcount


def set_opted_out(members: QuerySet, opted_out: bool) -> int:
    """Mark or unmark list members as opted out (one UPDATE)."""
    return members.update(opted_out=opted_out)


def records_with_addresses(addresses: list[str], model: type | None = None) -> QuerySet:
    """The (content type, object id) of every record whose primary address is one of these.

    Limited to one target type when `model` is given. Addresses are compared
    normalised (trimmed, lower case), as they are stored.
    """
    links = RecordEmailAddress.objects.filter(
        primary=True, email_address__address__in={normalize_address(a) for a in addresses}
    )
    if model is not None:
        links = links.filter(content_type=ContentType.objects.get_for_model(model))
    return links


def unmatched_addresses(addresses: list[str], links: QuerySet) -> list[str]:
    """The addresses (normalised) that none of the records found has as its primary one."""
    found = set(links.values_list("email_address__address", flat=True))
    wanted = dict.fromkeys(normalize_address(a) for a in addresses)
    return [address for address in wanted if address not in found]


def add_records_with_addresses(target_list: TargetList, links: QuerySet) -> int:
    """Add the records behind these address links in one INSERT ... SELECT; how many were new."""
    connection = connections[links.db]
    query = links.order_by().values("content_type_id", "object_id").query
    select_sql, params = query.get_compiler(using=links.db).as_sql()
    insert = "INSERT OR IGNORE INTO" if connection.vendor == "sqlite" else "INSERT INTO"
    conflict = "" if connection.vendor == "sqlite" else " ON CONFLICT DO NOTHING"
    sql = (
        f"{insert} {MEMBERS} (target_list_id, content_type_id, object_id, opted_out, added_at)"
        f" SELECT DISTINCT %s, chosen.content_type_id, chosen.object_id, %s, %s"
        f" FROM ({select_sql}) chosen{conflict}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [target_list.pk, False, timezone.now(), *params])
        return cursor.rowcount


def remove_records_with_addresses(target_list: TargetList, links: QuerySet) -> int:
    """Remove the records behind these address links in one DELETE; how many were removed."""
    connection = connections[links.db]
    query = links.order_by().values("content_type_id", "object_id").query
    select_sql, params = query.get_compiler(using=links.db).as_sql()
    sql = (
        f"DELETE FROM {MEMBERS} WHERE target_list_id = %s"
        f" AND (content_type_id, object_id) IN ({select_sql})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [target_list.pk, *params])
        return cursor.rowcount
