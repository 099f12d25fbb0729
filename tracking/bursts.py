"""Bursts seen afterwards: the burst rule applied to the recent hits as a whole.

Hits of one message that arrive in the same few milliseconds do not see each
other (each statement reads its own snapshot, and hits of one batch are written
together), so a scanner fetching every link at once with a browser's user
agent can leave its hits "person". `reclassify_bursts()`, run every minute by
Celery beat, looks at the recent hits as a whole and applies the burst rules
to them afterwards.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from tracking.models import Hit
from tracking.rules import BURST_SECONDS, REASON_LINKS_BURST, REASON_TRAP_BURST, burst_reason

# How far back the minutely job looks: hits of a burst are seconds apart, so a
# few runs' worth covers a job that missed a beat.
BURST_LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class _SeenHit:
    id: int
    queue_item_id: int
    kind: str
    tracking_url_id: int | None
    at: datetime
    is_machine: bool


def reclassify_bursts(now: datetime | None = None, lookback: timedelta = BURST_LOOKBACK) -> int:
    """Mark as machine the person hits that belong to a burst; how many changed.

    The same rule as when a hit arrives, applied to all recent hits together: a
    hit is in a burst when a hit of the same message within the next BURST_SECONDS
    sees, over the BURST_SECONDS before it, the hidden link or two different links.
    Only messages with such a pattern are read hit by hit.
    """
    since = (now or timezone.now()) - lookback
    recent = Hit.objects.filter(at__gte=since)
    # No index on `at` (each index is a write on the hottest insert): bound the
    # scan by id instead, reading back from the newest hit to the lookback.
    before = Hit.objects.filter(at__lt=since).order_by("-id").values_list("id", flat=True)
    if (bound := before.first()) is not None:
        recent = recent.filter(id__gt=bound)
    candidates = (
        recent.values("queue_item_id")
        .annotate(
            links=Count("tracking_url", distinct=True, filter=Q(kind=Hit.Kind.CLICK)),
            traps=Count("id", filter=Q(kind=Hit.Kind.TRAP)),
            people=Count("id", filter=Q(is_machine=False)),
        )
        .filter(Q(links__gte=2) | Q(traps__gte=1), people__gte=1)
        .values_list("queue_item_id", flat=True)
    )
    rows = (
        Hit.objects.filter(
            queue_item_id__in=list(candidates),
            at__gte=since - timedelta(seconds=BURST_SECONDS),
        )
        .order_by("queue_item_id", "at", "id")
        .values_list("id", "queue_item_id", "kind", "tracking_url_id", "at", "is_machine")
    )
    marks: dict[int, str] = {}
    for _, hits in itertools.groupby(
        (_SeenHit(*row) for row in rows), key=lambda hit: hit.queue_item_id
    ):
        marks.update(_burst_marks(list(hits)))
    changed = 0
    for reason in (REASON_TRAP_BURST, REASON_LINKS_BURST):
        ids = [hit_id for hit_id, marked in marks.items() if marked == reason]
        changed += Hit.objects.filter(id__in=ids, is_machine=False).update(
            is_machine=True, machine_reason=reason
        )
    return changed


def _burst_marks(hits: list[_SeenHit]) -> dict[int, str]:
    """Person hits of one message (in time order) that a burst makes machine, and why."""
    window = timedelta(seconds=BURST_SECONDS)
    marks: dict[int, str] = {}
    for last in hits:
        seen = [hit for hit in hits if last.at - window <= hit.at <= last.at]
        reason = burst_reason((hit.kind, hit.tracking_url_id) for hit in seen)
        if not reason:
            continue
        for hit in seen:
            if not hit.is_machine and marks.get(hit.id) != REASON_TRAP_BURST:
                marks[hit.id] = reason
    return marks
