"""The campaign log: filtering, CSV export and retargeting (a target list made from the log)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from campaigns.models import Campaign, CampaignLogRecord
from config.csv_export import csv_download
from targets.models import TargetList, TargetListMember
from targets.registry import target_types

Action = CampaignLogRecord.Action

# The log panel's filters, in the order the reference shows them.
LOG_FILTERS: dict[str, tuple[str, ...]] = {
    "all": (),
    "sent": (Action.SENT,),
    "opened": (Action.OPENED,),
    "clicked": (Action.CLICKED,),
    "opted_out": (Action.OPTED_OUT,),
    "bounced": (Action.BOUNCED,),
    "opted_in": (Action.OPTED_IN,),
    "lead_created": (Action.LEAD_CREATED,),
}
FILTER_LABELS = {"all": "All", **{key: Action(key).label for key in LOG_FILTERS if key != "all"}}


def filtered_log(
    campaign: Campaign, log_filter: str = "all", *, include_test: bool = False
) -> QuerySet[CampaignLogRecord]:
    """The campaign's log entries for one filter, newest first; test entries only on request."""
    if log_filter not in LOG_FILTERS:
        raise ValueError(f"Unknown log filter {log_filter!r}; use one of {', '.join(LOG_FILTERS)}.")
    records = CampaignLogRecord.objects.filter(campaign=campaign)
    if not include_test:
        records = records.filter(is_test=False)
    if LOG_FILTERS[log_filter]:
        records = records.filter(action__in=LOG_FILTERS[log_filter])
    return records.order_by("-action_date", "-id")


# ---------------------------------------------------------------------------
# CSV export

CSV_COLUMNS = [
    ("action_date", "Date"),
    ("action", "Action"),
    ("bounce_type", "Bounce type"),
    ("email_address", "Email address"),
    ("content_type__model", "Target type"),
    ("object_id", "Target id"),
    ("tracking_url__name", "Tracking URL"),
    ("tracking_url__url", "URL"),
    ("mass_email__name", "Mass email"),
    ("queue_item__uid", "Queue item"),
    ("is_test", "Test"),
]


def csv_response(campaign: Campaign, records: QuerySet[CampaignLogRecord], log_filter: str):
    name = f"campaign-{slugify(campaign.name) or campaign.pk}-log-{log_filter}.csv"
    fields = [field for field, _ in CSV_COLUMNS]
    # iterator(): a server-side cursor on PostgreSQL, so a million rows never sit in memory.
    rows = records.values_list(*fields).iterator(chunk_size=2000)
    return csv_download([label for _, label in CSV_COLUMNS], rows, name)


# ---------------------------------------------------------------------------
# Retargeting: a target list from the log


def _check_actions(actions: Iterable[str], what: str) -> list[str]:
    actions = list(dict.fromkeys(actions))
    unknown = [action for action in actions if action not in Action.values]
    if unknown:
        raise ValidationError(f"Unknown {what} action(s): {', '.join(map(str, unknown))}.")
    return actions


@transaction.atomic
def create_target_list_from_log(
    campaign: Campaign,
    including_actions: Sequence[str],
    excluding_actions: Sequence[str] = (),
    name: str = "",
) -> tuple[TargetList, int]:
    """A new target list of the records with an including action in the non-test log.

    A record with any excluding action is left out. The members are inserted in
    one INSERT ... SELECT DISTINCT ... WHERE NOT EXISTS; records of unregistered
    types or that no longer exist are skipped. Returns the list and its size.
    """
    including = _check_actions(including_actions, "including")
    excluding = _check_actions(excluding_actions, "excluding")
    if not including:
        raise ValidationError("Choose at least one including action.")
    name = name.strip()
    if not name:
        raise ValidationError("The target list needs a name.")
    if TargetList.objects.filter(name=name).exists():
        raise ValidationError(f"A target list named {name!r} already exists.")
    target_list = TargetList.objects.create(
        name=name, description=_description(campaign, including, excluding)
    )
    sql, params = _insert_members_sql(campaign, target_list, including, excluding)
    if sql is None:
        return target_list, 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The planner's cost for this one-off statement triggers JIT compilation,
            # which took longer (about 1.2 s) than it saved.
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        added = cursor.rowcount
    return target_list, added


def _description(campaign: Campaign, including: list[str], excluding: list[str]) -> str:
    def labels(actions: list[str]) -> str:
        return ", ".join(str(Action(action).label) for action in actions)

    text = f"From the log of campaign {campaign.name!r}: {labels(including)}"
    return text + (f"; without {labels(excluding)}" if excluding else "") + "."


def _in_list(values: Sequence) -> str:
    return ", ".join(["%s"] * len(values))


def _record_exists_sql() -> tuple[str, list]:
    """The log entry's target is a registered type and the record still exists.

    One EXISTS over a UNION ALL of every type's (content type, id): a plain AND
    EXISTS becomes a semi-join the planner can hash, where an OR of one EXISTS
    per type would be probed row by row (and IN over a large table, once it no
    longer fits work_mem, is re-scanned per row).
    """
    branches, params = [], []
    for target_type in target_types():
        meta = target_type.model._meta
        branches.append(f"SELECT %s AS ct, {meta.pk.column} AS id FROM {meta.db_table}")
        params.append(target_type.content_type.pk)
    sql = (
        f"EXISTS (SELECT 1 FROM ({' UNION ALL '.join(branches)}) rec"
        " WHERE rec.ct = log.content_type_id AND rec.id = log.object_id)"
    )
    return sql, params


def _insert_members_sql(
    campaign: Campaign, target_list: TargetList, including: list[str], excluding: list[str]
) -> tuple[str | None, list]:
    log = CampaignLogRecord._meta.db_table
    members = TargetListMember._meta.db_table
    exists_sql, exists_params = _record_exists_sql()
    if not exists_params:
        return None, []
    sql = (
        f"INSERT INTO {members} (target_list_id, content_type_id, object_id, opted_out, added_at)"
        f" SELECT DISTINCT %s, log.content_type_id, log.object_id, %s, %s FROM {log} log"
        f" WHERE log.campaign_id = %s AND log.is_test = %s"
        f" AND log.action IN ({_in_list(including)})"
        f" AND log.content_type_id IS NOT NULL AND log.object_id IS NOT NULL"
        f" AND {exists_sql}"
    )
    params = [target_list.pk, False, timezone.now(), campaign.pk, False, *including, *exists_params]
    if excluding:
        sql += (
            f" AND NOT EXISTS (SELECT 1 FROM {log} excl WHERE excl.campaign_id = log.campaign_id"
            f" AND excl.is_test = %s AND excl.content_type_id = log.content_type_id"
            f" AND excl.object_id = log.object_id AND excl.action IN ({_in_list(excluding)}))"
        )
        params += [False, *excluding]
    return sql, params
