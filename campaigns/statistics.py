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
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from campaigns.models import Campaign, CampaignLogRecord
from massmail.models import OutboundSettings, QueueItem
from tracking.models import TrackingUrl

Action = CampaignLogRecord.Action
Bounce = CampaignLogRecord.Bounce

# A campaign whose activity spans up to this long is charted per hour, else per day.
HOURLY_SPAN = timedelta(days=3)
SERIES_ACTIONS = (Action.SENT, Action.OPENED, Action.CLICKED)
PEOPLE_FIGURES = ("opened", "clicked")


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

    @property
    def counts_people(self) -> bool:
        """Opens and clicks are the figures the raw hits can tell people from machines in."""
        return self.key in PEOPLE_FIGURES


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


@dataclass(frozen=True)
class LogSummary:
    """The non-test log counted per (action, bounce type, hour): one index-only scan.

    The statistics and the time series both add up these groups (at most a few
    per hour of the campaign), so the million rows are read once, by the database.
    """

    groups: list[tuple[str, str, datetime, int]]
    clicked_items: int

    def total(self, action: str, bounce_type: str | None = None) -> int:
        return sum(
            n
            for a, b, _, n in self.groups
            if a == action and (bounce_type is None or b == bounce_type)
        )


def log_summary(campaign: Campaign) -> LogSummary:
    rows = (
        log_of(campaign)
        .annotate(hour=TruncHour("action_date"))
        .values_list("action", "bounce_type", "hour")
        .annotate(n=Count("pk"))
        .order_by()
    )
    # Clicked is the one action logged more than once per queue item (once per link).
    clicked = log_of(campaign).filter(action=Action.CLICKED)
    clicked_items = clicked.aggregate(n=Count("queue_item", distinct=True))["n"]
    return LogSummary(groups=list(rows), clicked_items=clicked_items)


def log_counts(campaign: Campaign, summary: LogSummary | None = None) -> dict[str, int]:
    """Counts of the non-test log: queue items, not events.

    Sent, Opened and Opted Out are logged once per queue item and a bounce once
    per (queue item, kind) (unique constraints on the log), so counting their
    rows counts queue items; clicks are counted as distinct queue items.
    """
    summary = summary or log_summary(campaign)
    return {
        "sent": summary.total(Action.SENT),
        "opened": summary.total(Action.OPENED),
        "clicked": summary.clicked_items,
        "opted_out": summary.total(Action.OPTED_OUT),
        "bounced_hard": summary.total(Action.BOUNCED, Bounce.HARD),
        "bounced_soft": summary.total(Action.BOUNCED, Bounce.SOFT),
        "leads_created": summary.total(Action.LEAD_CREATED),
    }


def _campaign_items(campaign: Campaign, *, is_test: bool) -> QuerySet:
    return QueueItem.objects.filter(mass_email__campaign=campaign, is_test=is_test).values("pk")


def counts_by_people(campaign: Campaign) -> dict[str, int] | None:
    """Distinct non-test queue items with a hit a person made (not a scanner or a proxy).

    A person who clicked a link has opened the message even when the client
    blocked the pixel, so a human click also counts as a human open.
    """
    Hit = hit_model()
    if Hit is None:
        return None
    human = Hit.objects.filter(
        queue_item__in=_campaign_items(campaign, is_test=False), is_machine=False
    )
    return human.aggregate(
        opened=Count("queue_item", distinct=True, filter=Q(kind__in=["open", "click"])),
        clicked=Count("queue_item", distinct=True, filter=Q(kind="click")),
    )


def campaign_statistics(
    campaign: Campaign,
    *,
    open_tracking: bool | None = None,
    summary: LogSummary | None = None,
    with_people: bool = True,
) -> CampaignStatistics:
    """The statistics panel's figures, only those that fit the campaign's type.

    with_people=False leaves the figures by people out (None): they read every
    raw hit of the campaign, so the campaign page fetches them separately.
    """
    if open_tracking is None:
        open_tracking = OutboundSettings.load().open_tracking
    counts = log_counts(campaign, summary)
    stats = CampaignStatistics(campaign=campaign, open_tracking=open_tracking, **counts)
    people = counts_by_people(campaign) if with_people else None
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


def activity_series(campaign: Campaign, summary: LogSummary | None = None) -> Series:
    """Sent, opens and clicks per hour (short campaigns) or per day, empty buckets as 0."""
    summary = summary or log_summary(campaign)
    per_hour: dict[tuple[datetime, str], int] = {}
    for action, _, hour, n in summary.groups:
        if action in SERIES_ACTIONS:
            per_hour[hour, action] = per_hour.get((hour, action), 0) + n
    if not per_hour:
        return Series("hour", [], {action: [] for action in SERIES_ACTIONS})
    first, last = min(h for h, _ in per_hour), max(h for h, _ in per_hour)
    if last - first <= HOURLY_SPAN:
        found, step, unit = per_hour, timedelta(hours=1), "hour"
    else:
        found, step, unit = _per_day(per_hour), timedelta(days=1), "day"
    buckets = _bucket_range(min(b for b, _ in found), max(b for b, _ in found), step)
    counts = {action: [found.get((b, action), 0) for b in buckets] for action in SERIES_ACTIONS}
    return Series(unit, buckets, counts)


def _per_day(per_hour: dict[tuple[datetime, str], int]) -> dict[tuple[datetime, str], int]:
    """Hourly groups added up into days of the current time zone."""
    per_day: dict[tuple[datetime, str], int] = {}
    for (hour, action), n in per_hour.items():
        day = timezone.localtime(hour).replace(hour=0, minute=0, second=0, microsecond=0)
        per_day[day, action] = per_day.get((day, action), 0) + n
    return per_day


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


def link_clicks(campaign: Campaign, *, with_hits: bool = True) -> list[LinkClicks]:
    """The campaign's tracking URLs, most clicked first, unclicked ones included, and
    the shared ones its messages were clicked on (with this campaign's clicks only).

    with_hits=False leaves out the figures read from the raw hits (None).
    """
    per_url = (
        log_of(campaign)
        .filter(action=Action.CLICKED, tracking_url__isnull=False)
        .values("tracking_url")
        .annotate(items=Count("pk"))  # once per (queue item, link): rows are items
        .order_by()
    )
    items = {row["tracking_url"]: row["items"] for row in per_url}
    tracking_urls = TrackingUrl.objects.filter(
        Q(campaign=campaign) | Q(campaign__isnull=True, pk__in=list(items))
    )
    shared_ids = [url.pk for url in tracking_urls if url.campaign_id is None]
    hits, people = _hits_per_url(campaign, shared_ids) if with_hits else (None, None)
    links = [
        LinkClicks(
            tracking_url_id=url.pk,
            name=url.name,
            url=url.url,
            clicked_items=items.get(url.pk, 0),
            hits=None if hits is None else hits.get(url.pk, 0),
            clicked_by_people=None if people is None else people.get(url.pk, 0),
        )
        for url in tracking_urls
    ]
    return sorted(links, key=lambda link: (-link.clicked_items, link.name))


def _hits_per_url(campaign: Campaign, shared_ids: list[int]) -> tuple[dict | None, dict | None]:
    Hit = hit_model()
    if Hit is None:
        return None, None
    own = (
        Hit.objects.filter(kind="click", tracking_url__campaign=campaign)
        # Test sends are few: leaving them out beats joining every queue item.
        .exclude(queue_item__in=_campaign_items(campaign, is_test=True))
    )
    # A shared URL's hits come from every campaign: only this one's items count.
    shared = Hit.objects.filter(
        kind="click",
        tracking_url_id__in=shared_ids,
        queue_item__in=_campaign_items(campaign, is_test=False),
    )
    rows = [*_per_url(own), *(_per_url(shared) if shared_ids else [])]
    hits = {row["tracking_url"]: row["hits"] for row in rows}
    people = {row["tracking_url"]: row["people"] for row in rows}
    return hits, people


def _per_url(hits: QuerySet) -> QuerySet:
    return (
        hits.values("tracking_url")
        .annotate(
            hits=Count("pk"),
            people=Count("queue_item", distinct=True, filter=Q(is_machine=False)),
        )
        .order_by()
    )
