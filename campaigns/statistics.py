"""How a campaign went: counts over its non-test log entries, a time series and its best links.

Everything here is a handful of aggregate queries whatever the size of the log
(one for the counts, one for the series, one for the links, one or two over the
raw hits): the campaign page must open in well under a second with a million
log records, so nothing iterates over rows in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.apps import apps
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour

from campaigns.models import Campaign, CampaignLogRecord

Action = CampaignLogRecord.Action
Bounce = CampaignLogRecord.Bounce

# A campaign whose activity spans up to this long is charted per hour, else per day.
HOURLY_SPAN = timedelta(days=3)
SERIES_ACTIONS = (Action.SENT, Action.OPENED, Action.CLICKED)


def percent_of(count: int, sent: int) -> Decimal:
    """count / sent x 100 to 2 decimals; nothing sent is 0.00, not a division error."""
    if not sent:
        return Decimal("0.00")
    return (Decimal(count) * 100 / Decimal(sent)).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Figure:
    """One line of the statistics panel."""

    key: str
    label: str
    count: int
    percent: Decimal
    # Distinct queue items with a hit classified as a person's (None: not measured).
    by_people: int | None = None
    by_people_percent: Decimal | None = None


@dataclass
class CampaignStatistics:
    campaign: Campaign
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    opted_out: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    leads_created: int = 0
    opened_by_people: int | None = None
    clicked_by_people: int | None = None
    open_tracking: bool = False
    figures: list[Figure] = field(default_factory=list)

    @property
    def bounced(self) -> int:
        return self.bounced_hard + self.bounced_soft

    def percent(self, count: int) -> Decimal:
        return percent_of(count, self.sent)


def log_of(campaign: Campaign, *, include_test: bool = False) -> QuerySet[CampaignLogRecord]:
    records = CampaignLogRecord.objects.filter(campaign=campaign)
    return records if include_test else records.filter(is_test=False)


def hit_model():
    """tracking.Hit once the tracking endpoints provide it; None before that."""
    try:
        return apps.get_model("tracking", "Hit")
    except LookupError:
        return None


def _distinct_items(action: str, **extra) -> Count:
    return Count("queue_item", distinct=True, filter=Q(action=action, **extra))


def log_counts(campaign: Campaign) -> dict[str, int]:
    """Counts of the non-test log in one query: queue items, not events."""
    return log_of(campaign).aggregate(
        sent=Count("pk", filter=Q(action=Action.SENT)),
        opened=_distinct_items(Action.OPENED),
        clicked=_distinct_items(Action.CLICKED),
        opted_out=_distinct_items(Action.OPTED_OUT),
        bounced_hard=_distinct_items(Action.BOUNCED, bounce_type=Bounce.HARD),
        bounced_soft=_distinct_items(Action.BOUNCED, bounce_type=Bounce.SOFT),
        leads_created=Count("pk", filter=Q(action=Action.LEAD_CREATED)),
    )


def counts_by_people(campaign: Campaign) -> dict[str, int] | None:
    """Distinct non-test queue items with a hit a person made (not a scanner or a proxy).

    A person who clicked a link has opened the message even when the client
    blocked the pixel, so a human click also counts as a human open.
    """
    Hit = hit_model()
    if Hit is None:
        return None
    human = Hit.objects.filter(
        queue_item__mass_email__campaign=campaign, queue_item__is_test=False, is_machine=False
    )
    return human.aggregate(
        opened=Count("queue_item", distinct=True, filter=Q(kind__in=["open", "click"])),
        clicked=Count("queue_item", distinct=True, filter=Q(kind="click")),
    )


def campaign_statistics(
    campaign: Campaign, *, open_tracking: bool | None = None
) -> CampaignStatistics:
    """The statistics panel's figures, only those that fit the campaign's type."""
    if open_tracking is None:
        from massmail.models import OutboundSettings

        open_tracking = OutboundSettings.load().open_tracking
    stats = CampaignStatistics(
        campaign=campaign, open_tracking=open_tracking, **log_counts(campaign)
    )
    people = counts_by_people(campaign)
    if people is not None:
        stats.opened_by_people = people["opened"]
        stats.clicked_by_people = people["clicked"]
    stats.figures = _figures_for_type(stats)
    return stats


def _figure(stats: CampaignStatistics, key: str, label: str, people: int | None = None) -> Figure:
    count = getattr(stats, key)
    return Figure(
        key=key,
        label=label,
        count=count,
        percent=stats.percent(count),
        by_people=people,
        by_people_percent=None if people is None else stats.percent(people),
    )


def _figures_for_type(stats: CampaignStatistics) -> list[Figure]:
    campaign = stats.campaign
    if not campaign.allows_mass_email:
        return [_figure(stats, "leads_created", "Leads created")]
    sent = _figure(stats, "sent", "Sent")
    bounces = [
        _figure(stats, "bounced_hard", "Bounced (hard)"),
        _figure(stats, "bounced_soft", "Bounced (soft)"),
    ]
    if campaign.is_informational:
        return [sent, *bounces]
    figures = [sent]
    # Without the pixel the only opens are those implied by clicks: a misleading figure.
    if stats.open_tracking:
        figures.append(_figure(stats, "opened", "Opened", stats.opened_by_people))
    figures += [
        _figure(stats, "clicked", "Clicked", stats.clicked_by_people),
        _figure(stats, "opted_out", "Opted out"),
        *bounces,
        _figure(stats, "leads_created", "Leads created"),
    ]
    return figures


@dataclass(frozen=True)
class Series:
    """Counts per bucket of time for sent, opened and clicked."""

    unit: str  # "hour" or "day"
    buckets: list[datetime]
    counts: dict[str, list[int]]

    @property
    def is_empty(self) -> bool:
        return not self.buckets


def activity_series(campaign: Campaign) -> Series:
    """Sent, opens and clicks per hour (short campaigns) or per day, empty buckets as 0."""
    records = log_of(campaign).filter(action__in=SERIES_ACTIONS)
    span = records.aggregate(first=Min("action_date"), last=Max("action_date"))
    if span["first"] is None:
        return Series("hour", [], {action: [] for action in SERIES_ACTIONS})
    hourly = span["last"] - span["first"] <= HOURLY_SPAN
    trunc, step = (TruncHour, timedelta(hours=1)) if hourly else (TruncDay, timedelta(days=1))
    rows = (
        records.annotate(bucket=trunc("action_date"))
        .values("bucket", "action")
        .annotate(n=Count("pk"))
        .order_by()
    )
    found = {(row["bucket"], row["action"]): row["n"] for row in rows}
    buckets = _bucket_range(min(b for b, _ in found), max(b for b, _ in found), step)
    counts = {action: [found.get((b, action), 0) for b in buckets] for action in SERIES_ACTIONS}
    return Series("hour" if hourly else "day", buckets, counts)


def _bucket_range(first: datetime, last: datetime, step: timedelta) -> list[datetime]:
    buckets, current = [], first
    while current <= last:
        buckets.append(current)
        current += step
    return buckets


@dataclass(frozen=True)
class LinkClicks:
    tracking_url_id: int
    name: str
    url: str
    clicked_items: int  # distinct queue items, from the log
    hits: int | None  # every click on it, scanners included (None: not measured)
    clicked_by_people: int | None


def link_clicks(campaign: Campaign) -> list[LinkClicks]:
    """The campaign's tracking URLs, most clicked first, unclicked ones included."""
    from tracking.models import TrackingUrl

    per_url = (
        log_of(campaign)
        .filter(action=Action.CLICKED, tracking_url__isnull=False)
        .values("tracking_url")
        .annotate(items=Count("queue_item", distinct=True))
        .order_by()
    )
    items = {row["tracking_url"]: row["items"] for row in per_url}
    hits, people = _hits_per_url(campaign)
    links = [
        LinkClicks(
            tracking_url_id=url.pk,
            name=url.name,
            url=url.url,
            clicked_items=items.get(url.pk, 0),
            hits=None if hits is None else hits.get(url.pk, 0),
            clicked_by_people=None if people is None else people.get(url.pk, 0),
        )
        for url in TrackingUrl.objects.filter(campaign=campaign)
    ]
    return sorted(links, key=lambda link: (-link.clicked_items, link.name))


def _hits_per_url(campaign: Campaign) -> tuple[dict | None, dict | None]:
    Hit = hit_model()
    if Hit is None:
        return None, None
    rows = (
        Hit.objects.filter(
            kind="click",
            tracking_url__campaign=campaign,
            queue_item__is_test=False,
        )
        .values("tracking_url")
        .annotate(
            hits=Count("pk"),
            people=Count("queue_item", distinct=True, filter=Q(is_machine=False)),
        )
        .order_by()
    )
    hits = {row["tracking_url"]: row["hits"] for row in rows}
    people = {row["tracking_url"]: row["people"] for row in rows}
    return hits, people
