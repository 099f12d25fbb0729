"""Recording hits on public links.

Every request on a tracked link, the open pixel, the hidden trap link or the
unsubscribe page is kept as a raw `Hit` (time, method, user agent, IP prefix)
and classified by the rules of tracking/rules.py as a person's or a machine's.
Campaign log entries (Clicked, Opened) are written for every hit, once per item
(and URL), as the reference does; statistics that count people look at the hits.

On PostgreSQL the hits of concurrent requests are written together, in one
statement per batch (tracking/hit_statement.py). Other databases take the
portable path below, the same rules through the ORM in one transaction. Bursts
that concurrent hits could not see are settled afterwards (tracking/bursts.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q

from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings, QueueItem
from tracking import hit_statement
from tracking.models import Hit, TrackingUrl
from tracking.rules import BURST_SECONDS, Destination, Visit, classify, truncate_ip


def record_hit(
    kind: str, uid: uuid.UUID, visit: Visit, tracking_url_id: int | None = None
) -> Destination | None:
    """Keep the hit and its log entries; None when the item (or its link) does not exist.

    A tracking URL of another campaign than the queue item's is "not found" too;
    a shared one (no campaign) is found from every campaign.
    """
    if kind == Hit.Kind.CLICK and tracking_url_id is None:
        raise ValueError("A click needs its tracking URL.")
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        return hit_statement.record(kind, uid, visit, tracking_url_id)
    return _record_portable(kind, uid, visit, tracking_url_id)


def _record_portable(
    kind: str, uid: uuid.UUID, visit: Visit, tracking_url_id: int | None
) -> Destination | None:
    item = (
        QueueItem.objects.filter(uid=uid)
        .select_related("mass_email", "email_address")
        .only(
            "id",
            "is_test",
            "sent_at",
            "content_type_id",
            "object_id",
            "mass_email__campaign_id",
            "email_address__address",
        )
        .first()
    )
    if item is None:
        return None
    destination = Destination()
    if kind == Hit.Kind.CLICK:
        url = (
            TrackingUrl.objects.filter(pk=tracking_url_id)
            .filter(Q(campaign_id=item.mass_email.campaign_id) | Q(campaign_id__isnull=True))
            .first()
        )
        if url is None:
            return None
        destination = Destination(url.url, url.action, url.message)
    options = OutboundSettings.load()
    if kind == Hit.Kind.OPEN and not options.open_tracking:
        return destination
    with transaction.atomic():
        _write_portable(kind, item, visit, tracking_url_id, options)
    return destination


def _write_portable(
    kind: str,
    item: QueueItem,
    visit: Visit,
    tracking_url_id: int | None,
    options: OutboundSettings,
) -> None:
    recent = list(
        Hit.objects.filter(
            queue_item_id=item.pk, at__gte=visit.at - timedelta(seconds=BURST_SECONDS)
        ).values_list("id", "kind", "tracking_url_id")
    )
    verdict = classify(kind, visit, item.sent_at, tracking_url_id, [r[1:] for r in recent])
    Hit.objects.create(
        queue_item_id=item.pk,
        kind=kind,
        tracking_url_id=tracking_url_id,
        at=visit.at,
        method=visit.method[:10],
        user_agent=visit.user_agent,
        ip=truncate_ip(visit.ip) if options.truncate_ip else visit.ip,
        is_machine=bool(verdict.reason),
        machine_reason=verdict.reason,
    )
    if verdict.burst_reason:
        Hit.objects.filter(id__in=[r[0] for r in recent], is_machine=False).update(
            is_machine=True, machine_reason=verdict.burst_reason
        )
    actions = []
    if kind == Hit.Kind.CLICK:
        actions.append(CampaignLogRecord.Action.CLICKED)
    if kind in (Hit.Kind.CLICK, Hit.Kind.OPEN) and options.open_tracking:
        actions.append(CampaignLogRecord.Action.OPENED)
    CampaignLogRecord.objects.write(
        CampaignLogRecord.of_item(
            item,
            action,
            at=visit.at,
            tracking_url_id=tracking_url_id if action == CampaignLogRecord.Action.CLICKED else None,
        )
        for action in actions
    )
