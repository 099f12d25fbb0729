"""Retry of Delivery unknown and Failed items: what is known to be delivered is Sent,
and the person is told how many may get a second copy before anything is resent.

An unknown item was delivered when something names it after it left: a bounce notice
(IMAP or a provider's webhook; not an SMTP-time refusal, which says the opposite) or
a hit on one of its links or its open pixel. Such items are Sent, with their claim time
as the send time, so their share of the hourly cap stays spent."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from bounces.models import BounceEvent
from campaigns.models import CampaignLogRecord
from massmail.models import QueueItem
from massmail.sending import sent_log
from tracking.models import Hit

Status = QueueItem.Status
DELIVERED = "delivered: a bounce notice or a hit names it (was: delivery unknown)"


@dataclass(frozen=True)
class RetryPlan:
    delivered: int  # unknown, but known to be delivered: made Sent, not resent
    second_copy: int  # unknown, nothing known: resending may deliver a second copy
    failed: int  # failed: never accepted, resent

    @property
    def resent(self) -> int:
        return self.second_copy + self.failed


def known_delivered(items: QuerySet) -> QuerySet:
    """The unknown ones among `items` that something names as delivered."""
    bounced = BounceEvent.objects.filter(queue_item=OuterRef("pk")).exclude(source="smtp")
    hit = Hit.objects.filter(queue_item=OuterRef("pk"))
    return items.filter(status=Status.UNKNOWN, is_test=False).filter(Exists(bounced) | Exists(hit))


def retry_plan(items: QuerySet) -> RetryPlan:
    unknown = items.filter(status=Status.UNKNOWN, is_test=False).count()
    delivered = known_delivered(items).count()
    failed = items.filter(status=Status.FAILED, is_test=False).count()
    return RetryPlan(delivered=delivered, second_copy=unknown - delivered, failed=failed)


def settle_delivered(items: QuerySet) -> int:
    """Unknown items known to be delivered become Sent (and logged Sent); how many."""
    delivered = list(
        known_delivered(items).select_related("mass_email", "email_address").order_by("pk")
    )
    if not delivered:
        return 0
    with transaction.atomic():
        settled = []
        for item in delivered:  # few: a person's selection of unknown items
            item.sent_at = item.claimed_at or item.created_at
            moved = QueueItem.objects.filter(pk=item.pk, status=Status.UNKNOWN).update(
                status=Status.SENT, sent_at=item.sent_at, last_error=DELIVERED
            )
            if moved:
                settled.append(item)
        CampaignLogRecord.objects.write(sent_log(item, item.sent_at) for item in settled)
    return len(settled)
