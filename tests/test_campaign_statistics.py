"""Campaign statistics against hand-computed figures."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from campaigns.models import Campaign, CampaignLogRecord
from campaigns.statistics import (
    activity_series,
    campaign_statistics,
    hit_model,
    link_clicks,
    percent_of,
)
from tests.factories import make_campaign, make_contact, make_mass_email, make_tracking_url
from tests.log_factories import log, make_queue_item

pytestmark = pytest.mark.django_db
Action = CampaignLogRecord.Action


@pytest.fixture
def sent_campaign():
    """7 recipients sent; hand-computed: 3 opened, 2 clicked, 1 out, 1 hard, 1 soft, 1 lead.

    Plus a test send (opened and clicked) and another campaign, both to be ignored.
    """
    campaign = make_campaign(type=Campaign.Type.NEWSLETTER)
    mass_email = make_mass_email(campaign)
    link_a = make_tracking_url(campaign, name="A")
    link_b = make_tracking_url(campaign, name="B")
    make_tracking_url(campaign, name="C never clicked")
    items = [make_queue_item(mass_email, make_contact()) for _ in range(7)]
    for item in items:
        log(item, Action.SENT)
    for item in items[:3]:
        log(item, Action.OPENED)
    log(items[0], Action.CLICKED, tracking_url=link_a)
    log(items[0], Action.CLICKED, tracking_url=link_b)
    log(items[1], Action.CLICKED, tracking_url=link_a)
    log(items[2], Action.OPTED_OUT)
    log(items[5], Action.BOUNCED, bounce_type="hard")
    log(items[6], Action.BOUNCED, bounce_type="soft")
    CampaignLogRecord.objects.create(campaign=campaign, action=Action.LEAD_CREATED)

    test_item = make_queue_item(mass_email, make_contact(), is_test=True)
    for action in (Action.SENT, Action.OPENED):
        log(test_item, action)
    log(test_item, Action.CLICKED, tracking_url=link_b)

    other = make_mass_email(make_campaign())
    log(make_queue_item(other, make_contact()), Action.SENT)
    return campaign, items, (link_a, link_b)


def test_counts_are_distinct_queue_items_of_non_test_entries(sent_campaign):
    campaign, _, _ = sent_campaign
    stats = campaign_statistics(campaign, open_tracking=True)
    assert (stats.sent, stats.opened, stats.clicked, stats.opted_out) == (7, 3, 2, 1)
    assert (stats.bounced_hard, stats.bounced_soft, stats.bounced, stats.leads_created) == (
        1,
        1,
        2,
        1,
    )


def test_percentages_of_sent_to_two_decimals(sent_campaign):
    campaign, _, _ = sent_campaign
    figures = {f.key: f for f in campaign_statistics(campaign, open_tracking=True).figures}
    assert figures["sent"].percent == Decimal("100.00")
    assert figures["opened"].percent == Decimal("42.86")  # 3 / 7
    assert figures["clicked"].percent == Decimal("28.57")  # 2 / 7
    assert figures["opted_out"].percent == Decimal("14.29")  # 1 / 7
    assert figures["bounced_hard"].percent == Decimal("14.29")


def test_nothing_sent_gives_zero_percent_not_an_error():
    campaign = make_campaign()
    CampaignLogRecord.objects.create(campaign=campaign, action=Action.LEAD_CREATED)
    stats = campaign_statistics(campaign, open_tracking=True)
    assert stats.sent == 0 and stats.leads_created == 1
    assert {f.key: f.percent for f in stats.figures}["leads_created"] == Decimal("0.00")
    assert percent_of(1, 3) == Decimal("33.33") and percent_of(2, 3) == Decimal("66.67")


def test_panel_shows_what_fits_the_campaign_type(sent_campaign):
    campaign, _, _ = sent_campaign
    with_opens = [f.key for f in campaign_statistics(campaign, open_tracking=True).figures]
    assert with_opens == [
        "sent",
        "opened",
        "clicked",
        "opted_out",
        "bounced_hard",
        "bounced_soft",
        "leads_created",
    ]
    without_opens = [f.key for f in campaign_statistics(campaign, open_tracking=False).figures]
    assert "opened" not in without_opens and "clicked" in without_opens

    Campaign.objects.filter(pk=campaign.pk).update(type=Campaign.Type.INFORMATIONAL)
    campaign.refresh_from_db()
    informational = campaign_statistics(campaign, open_tracking=True)
    assert [f.key for f in informational.figures] == ["sent", "bounced_hard", "bounced_soft"]


def test_open_tracking_setting_is_read_when_not_given(sent_campaign):
    from massmail.models import OutboundSettings

    campaign, _, _ = sent_campaign
    settings = OutboundSettings.load()
    settings.open_tracking = True
    settings.save()
    assert "opened" in [f.key for f in campaign_statistics(campaign).figures]
    settings.open_tracking = False
    settings.save()
    assert "opened" not in [f.key for f in campaign_statistics(campaign).figures]


def test_link_table_counts_distinct_items_and_lists_unclicked_links(sent_campaign):
    campaign, _, _ = sent_campaign
    table = [(link.name, link.clicked_items) for link in link_clicks(campaign)]
    assert table == [("A", 2), ("B", 1), ("C never clicked", 0)]


def test_series_per_hour_for_a_short_campaign():
    campaign = make_campaign()
    mass_email = make_mass_email(campaign)
    items = [make_queue_item(mass_email, make_contact()) for _ in range(3)]
    day = datetime(2026, 3, 2, tzinfo=UTC)
    log(items[0], Action.SENT, at=day.replace(hour=10, minute=5))
    log(items[1], Action.SENT, at=day.replace(hour=10, minute=20))
    log(items[2], Action.SENT, at=day.replace(hour=11, minute=30))
    log(items[0], Action.OPENED, at=day.replace(hour=11, minute=10))
    log(items[1], Action.OPENED, at=day.replace(hour=13, minute=59))
    log(items[1], Action.CLICKED, at=day.replace(hour=13, minute=59, second=30))
    log(items[2], Action.BOUNCED, at=day.replace(hour=15), bounce_type="soft")  # not charted

    series = activity_series(campaign)
    assert series.unit == "hour"
    assert [b.hour for b in series.buckets] == [10, 11, 12, 13]
    assert series.counts == {
        "sent": [2, 1, 0, 0],
        "opened": [0, 1, 0, 1],
        "clicked": [0, 0, 0, 1],
    }


def test_series_per_day_for_a_long_campaign():
    campaign = make_campaign()
    mass_email = make_mass_email(campaign)
    items = [make_queue_item(mass_email, make_contact()) for _ in range(2)]
    log(items[0], Action.SENT, at=datetime(2026, 3, 1, 9, tzinfo=UTC))
    log(items[1], Action.SENT, at=datetime(2026, 3, 1, 23, tzinfo=UTC))
    log(items[0], Action.OPENED, at=datetime(2026, 3, 6, 8, tzinfo=UTC))
    test_item = make_queue_item(mass_email, make_contact(), is_test=True)
    log(test_item, Action.SENT, at=datetime(2026, 4, 1, tzinfo=UTC))  # ignored: test

    series = activity_series(campaign)
    assert series.unit == "day"
    assert [b.day for b in series.buckets] == [1, 2, 3, 4, 5, 6]
    assert series.counts["sent"] == [2, 0, 0, 0, 0, 0]
    assert series.counts["opened"] == [0, 0, 0, 0, 0, 1]


def test_series_of_an_empty_campaign_is_empty():
    assert activity_series(make_campaign()).is_empty


def hit(Hit, **fields):
    method = "GET" if fields["kind"] != "unsubscribe_page" else "POST"
    return Hit.objects.create(at=datetime.now(UTC), method=method, **fields)


def test_opens_and_clicks_by_people_exclude_machine_hits(sent_campaign):
    Hit = hit_model()
    if Hit is None:
        pytest.skip("tracking.Hit is not there yet: human figures are not measured")
    campaign, items, (link_a, link_b) = sent_campaign
    # item 0: a scanner opened and clicked A, then the person clicked B (so opened too);
    # item 1: only a proxy opened; item 2: the person opened; item 3: a person clicked A twice.
    hit(Hit, queue_item=items[0], kind="open", is_machine=True)
    hit(Hit, queue_item=items[0], kind="click", tracking_url=link_a, is_machine=True)
    hit(Hit, queue_item=items[0], kind="click", tracking_url=link_b, is_machine=False)
    hit(Hit, queue_item=items[1], kind="open", is_machine=True)
    hit(Hit, queue_item=items[2], kind="open", is_machine=False)
    hit(Hit, queue_item=items[3], kind="click", tracking_url=link_a, is_machine=False)
    hit(Hit, queue_item=items[3], kind="click", tracking_url=link_a, is_machine=False)

    stats = campaign_statistics(campaign, open_tracking=True)
    assert stats.opened_by_people == 3  # items 0, 2, 3
    assert stats.clicked_by_people == 2  # items 0, 3
    figures = {f.key: f for f in stats.figures}
    assert figures["opened"].by_people_percent == Decimal("42.86")
    links = {link.name: link for link in link_clicks(campaign)}
    assert (links["A"].hits, links["A"].clicked_by_people) == (3, 1)
    assert (links["B"].hits, links["B"].clicked_by_people) == (1, 1)


def test_chart_geometry():
    from campaigns.chart import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, activity_chart
    from campaigns.statistics import Series

    hours = [datetime(2026, 3, 2, h, tzinfo=UTC) for h in (10, 11, 12)]
    chart = activity_chart(
        Series("hour", hours, {"sent": [4, 2, 0], "opened": [0, 1, 0], "clicked": [0, 0, 0]})
    )
    sent = next(line for line in chart.lines if line.key == "sent")
    assert chart.y_max == 4 and sent.total == 6
    middle = ((LEFT + WIDTH - RIGHT) / 2, (TOP + HEIGHT - BOTTOM) / 2)
    expected = [(LEFT, TOP), middle, (WIDTH - RIGHT, HEIGHT - BOTTOM)]  # 4 at top, 0 at bottom
    assert [tuple(map(float, p.split(","))) for p in sent.points.split()] == expected
    assert [label for _, label in chart.x_labels] == ["2026-03-02 10:00", "2026-03-02 12:00"]
    single = activity_chart(Series("day", hours[:1], {"sent": [3], "opened": [1], "clicked": [0]}))
    assert all(len(line.points.split()) == 2 for line in single.lines)  # a visible level line
    assert activity_chart(Series("hour", [], {"sent": [], "opened": [], "clicked": []})) is None
