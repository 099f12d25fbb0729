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
    """A log entry for a queue item, copying what the sender and endpoints copy."""
    return CampaignLogRecord.objects.create(
        **{
            "action": action,
            "action_date": at or timezone.now(),
            "campaign": item.mass_email.campaign,
            "mass_email": item.mass_email,
            "queue_item": item,
            "content_type": item.content_type,
            "object_id": item.object_id,
            "email_address": item.email_address.address,
            "is_test": item.is_test,
            **overrides,
        }
    )
