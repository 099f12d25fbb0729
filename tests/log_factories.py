"""Queue items and campaign log entries for tests of statistics and the log panel."""

from __future__ import annotations

from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from massmail.models import MassEmail, QueueItem
from targets.models import primary_email_of

Action = CampaignLogRecord.Action


def make_queue_item(mass_email: MassEmail, record, **overrides) -> QueueItem:
    return QueueItem.objects.create(
        **{
            "mass_email": mass_email,
            "content_type": ContentType.objects.get_for_model(record),
            "object_id": record.pk,
            "email_address": primary_email_of(record),
            "status": QueueItem.Status.SENT,
            "sent_at": timezone.now(),
            **overrides,
        }
    )


def log(item: QueueItem, action: str, at: datetime | None = None, **overrides):
    """A log entry for a queue item, made as the sender and the endpoints make theirs."""
    record = CampaignLogRecord.of_item(item, action, at=at)
    for name, value in overrides.items():
        setattr(record, name, value)
    record.save()
    return record
