"""Building a mass email's queue: one item per unique address, in one statement.

When a mass email is due (Pending, start passed, campaign not Inactive), every
member of its including lists with a primary address is a candidate; opted-out
memberships and addresses (unless Informational), invalid addresses and anything
in an excluding list are dropped; one candidate per address is kept by type order
(accounts, contacts, leads, users, custom types), then list order, then id; the
rest is one INSERT ... SELECT (`DISTINCT ON` on PostgreSQL, a window function on
SQLite). Idempotent: a queue is built once, under a row lock on the mass email.
A mass email with an A/B test has its queue split among the variants in the same
transaction (massmail/splittests.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Campaign
from massmail.models import MassEmail, QueueItem, SplitTest
from massmail.splittests import split_queue
from massmail.sql import flatten, sql_placeholders
from targets.exclusion import excluded_address_ids
from targets.models import EmailAddress, RecordEmailAddress, TargetListMember
from targets.registry import target_types

Status = QueueItem.Status


def build_due_queues(now: datetime | None = None) -> list[int]:
    """Build the queue of every Pending mass email whose start has passed."""
    now = now or timezone.now()
    due = MassEmail.objects.filter(status=MassEmail.Status.PENDING, start_at__lte=now).exclude(
        campaign__status=Campaign.Status.INACTIVE
    )
    return [pk for pk in due.values_list("pk", flat=True) if build_queue(pk, now=now) is not None]


def build_queue(mass_email_id: int, *, now: datetime | None = None) -> int | None:
    """Queue one item per unique address; the count, or None when not due (idempotent)."""
    now = now or timezone.now()
    with transaction.atomic():
        mass_email = (
            MassEmail.objects.select_for_update(of=("self",))
            .select_related("campaign")
            .filter(pk=mass_email_id)
            .first()
        )
        if not _is_due(mass_email, now):
            return None
        count = _insert_queue_items(mass_email, now)
        mass_email.status = MassEmail.Status.IN_PROCESS if count else MassEmail.Status.COMPLETE
        split_test = SplitTest.objects.filter(
            parent=mass_email, state=SplitTest.State.WAITING
        ).first()
        if count and split_test is not None:
            # In this transaction: no tick sees the parent sending before its split.
            split_queue(split_test, now)
            mass_email.status = MassEmail.Status.TESTING
        mass_email.queue_built_at = now
        mass_email.save(update_fields=["status", "queue_built_at"])
    return count


def _is_due(mass_email: MassEmail | None, now: datetime) -> bool:
    return (
        mass_email is not None
        and mass_email.status == MassEmail.Status.PENDING
        and mass_email.start_at <= now
        and mass_email.campaign.status != Campaign.Status.INACTIVE
    )


def _list_ids(mass_email: MassEmail) -> tuple[list[int], list[int]]:
    """Including lists in the order they were added, and excluding ones (campaign's if empty)."""
    including = mass_email.target_lists.through.objects.filter(massemail=mass_email)
    list_ids = list(including.order_by("id").values_list("targetlist_id", flat=True))
    excluding = list(mass_email.excluding_target_lists.values_list("pk", flat=True))
    if not list_ids:
        campaign_lists = mass_email.campaign.target_lists.through.objects.filter(
            campaign=mass_email.campaign
        )
        list_ids = list(campaign_lists.order_by("id").values_list("targetlist_id", flat=True))
        excluding = excluding or list(
            mass_email.campaign.excluding_target_lists.values_list("pk", flat=True)
        )
    return list_ids, excluding


def recipients_sql(mass_email: MassEmail) -> tuple[str, list[Any]] | None:
    """The rows a queue build would insert now (content_type_id, object_id,
    email_address_id, ...), one per address; None when the mass email has no lists.

    What the pre-send checks count and the preview offers, so both speak of the
    people who will really get the message.
    """
    list_ids, excluding_ids = _list_ids(mass_email)
    if not list_ids:
        return None
    candidates, params = _candidates_sql(mass_email, list_ids, excluding_ids)
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT DISTINCT ON (email_address_id) * FROM ({candidates}) c"
            " ORDER BY email_address_id, type_order, list_order, object_id"
        )
    else:
        sql = (
            "SELECT * FROM (SELECT c.*, ROW_NUMBER() OVER (PARTITION BY email_address_id"
            f" ORDER BY type_order, list_order, object_id) AS rank FROM ({candidates}) c)"
            " WHERE rank = 1"
        )
    return sql, params


def _insert_queue_items(mass_email: MassEmail, now: datetime) -> int:
    recipients = recipients_sql(mass_email)
    if recipients is None:
        return 0
    one_per_address, params = recipients
    # Django keeps UUIDField as char(32) hex on SQLite.
    uid = "gen_random_uuid()" if connection.vendor == "postgresql" else "lower(hex(randomblob(16)))"
    table = QueueItem._meta.db_table
    sql = (
        f"INSERT INTO {table} (uid, mass_email_id, content_type_id, object_id,"
        " email_address_id, status, attempt_count, last_error, claimed_by, message_id,"
        f" is_test, created_at) SELECT {uid}, %s, content_type_id, object_id,"
        " email_address_id, %s, 0, '', '', '', %s, %s"
        # Rows go in address order (what DISTINCT ON yields anyway): no second sort, and
        # the (mass email, address) indexes grow at their end instead of at random.
        # ("WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint.)
        f" FROM ({one_per_address}) firsts WHERE true ORDER BY email_address_id"
        " ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The sort of a million-row build fits in memory instead of spilling to disk.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(sql, [mass_email.pk, Status.PENDING, False, now, *params])
        return cursor.rowcount


def _candidates_sql(
    mass_email: MassEmail, list_ids: list[int], excluding_ids: list[int]
) -> tuple[str, list[Any]]:
    """Members of the lists with their primary address, filtered by the reference's rules."""
    ignore_opt_out = mass_email.campaign.is_informational
    type_order = {t.content_type.pk: t.order for t in target_types()}
    members = TargetListMember._meta.db_table
    links = RecordEmailAddress._meta.db_table
    addresses = EmailAddress._meta.db_table
    type_case = " ".join("WHEN %s THEN %s" for _ in type_order)
    list_case = " ".join("WHEN %s THEN %s" for _ in list_ids)
    params: list[Any] = [*flatten(type_order.items())]
    params += flatten((pk, position) for position, pk in enumerate(list_ids))
    where = [
        f"m.target_list_id IN ({sql_placeholders(list_ids)})",
        f"m.content_type_id IN ({sql_placeholders(type_order)})",
        "NOT a.invalid",
    ]
    params += [*list_ids, *type_order]
    if not ignore_opt_out:
        where += ["NOT m.opted_out", "NOT a.opt_out"]
    if excluding_ids:
        excluded_sql, excluded_params = excluded_address_ids(excluding_ids).query.sql_with_params()
        where.append(f"r.email_address_id NOT IN ({excluded_sql})")
        params += list(excluded_params)
    sql = (
        "SELECT m.content_type_id AS content_type_id, m.object_id AS object_id,"
        " r.email_address_id AS email_address_id,"
        f" CASE m.content_type_id {type_case} END AS type_order,"
        f" CASE m.target_list_id {list_case} END AS list_order"
        f" FROM {members} m"
        f" JOIN {links} r ON r.content_type_id = m.content_type_id"
        ' AND r.object_id = m.object_id AND r."primary"'
        f" JOIN {addresses} a ON a.id = r.email_address_id"
        f" WHERE {' AND '.join(where)}"
    )
    return sql, params


def _count(sql: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def recipient_count(mass_email: MassEmail) -> int:
    """How many messages a queue build would queue now."""
    recipients = recipients_sql(mass_email)
    if recipients is None:
        return 0
    sql, params = recipients
    return _count(f"SELECT COUNT(*) FROM ({sql}) r", params)


def recently_mailed_count(mass_email: MassEmail, since: datetime) -> int:
    """Of the addresses this mass email is still to send to, those another mass email of
    its campaign sent to since `since`."""
    mailed = (
        QueueItem.objects.filter(
            status=Status.SENT,
            is_test=False,
            sent_at__gte=since,
            mass_email__campaign_id=mass_email.campaign_id,
        )
        .exclude(mass_email_id=mass_email.pk)
        .values("email_address_id")
    )
    if mass_email.queue_built_at is not None:
        return mass_email.queue_items.filter(
            status=Status.PENDING, is_test=False, email_address_id__in=mailed
        ).count()
    recipients = recipients_sql(mass_email)
    if recipients is None:
        return 0
    sql, params = recipients
    mailed_sql, mailed_params = mailed.query.sql_with_params()
    return _count(
        f"SELECT COUNT(*) FROM ({sql}) r WHERE r.email_address_id IN ({mailed_sql})",
        [*params, *mailed_params],
    )
