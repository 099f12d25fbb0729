"""What a record's admin page shows about its addresses and the mail it was sent.

Address status: per address of the record, whether it is opted out or invalid
and how many bounces of each verdict it had. Campaign history: the record's
campaign log entries, newest first (read through the log's (target, date) index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Count, Max

from bounces.models import BounceEvent
from campaigns.models import CampaignLogRecord
from targets.models import RecordEmailAddress

HISTORY_SHOWN = 50


@dataclass
class AddressStatus:
    address: str
    primary: bool
    opt_out: bool
    invalid: bool
    bounces: dict[str, int] = field(default_factory=dict)  # verdict label -> count
    last_bounce_at: datetime | None = None


def address_statuses(record: models.Model) -> list[AddressStatus]:
    """The record's addresses, primary first, each with its flags and bounce counts."""
    links = (
        RecordEmailAddress.objects.filter(
            content_type=ContentType.objects.get_for_model(record), object_id=record.pk
        )
        .select_related("email_address")
        .order_by("-primary", "email_address__address")
    )
    statuses = {
        link.email_address_id: AddressStatus(
            link.email_address.address,
            link.primary,
            link.email_address.opt_out,
            link.email_address.invalid,
        )
        for link in links
    }
    counts = (
        BounceEvent.objects.filter(email_address_id__in=statuses)
        .values("email_address_id", "verdict")
        .annotate(count=Count("id"), last=Max("occurred_at"))
        .order_by("email_address_id", "verdict")
    )
    labels = dict(BounceEvent.Verdict.choices)
    for row in counts:
        status = statuses[row["email_address_id"]]
        status.bounces[labels.get(row["verdict"], row["verdict"])] = row["count"]
        status.last_bounce_at = max(filter(None, [status.last_bounce_at, row["last"]]))
    return list(statuses.values())


def campaign_history(record: models.Model, limit: int = HISTORY_SHOWN) -> list[CampaignLogRecord]:
    """The record's newest campaign log entries (test sends included, marked as such)."""
    return list(
        CampaignLogRecord.objects.filter(
            content_type=ContentType.objects.get_for_model(record), object_id=record.pk
        )
        .select_related("campaign", "mass_email", "tracking_url")
        .order_by("-action_date", "-id")[:limit]
    )
