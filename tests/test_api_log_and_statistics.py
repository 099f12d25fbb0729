"""A campaign's statistics and its log through the API: the panel's figures, the log by
pages of a cursor, filtered by action, time and mass email, test sends left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings
from tests.api_client import make_marketer, token_client
from tests.factories import make_campaign, make_contact, make_mass_email, make_tracking_url
from tests.log_factories import log, make_queue_item

pytestmark = pytest.mark.django_db
Action = CampaignLogRecord.Action
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def api():
    return token_client(make_marketer())


@pytest.fixture
def campaign_with_log():
    campaign = make_campaign()
    mass_email = make_mass_email(campaign)
    other_mass_email = make_mass_email(campaign)
    link = make_tracking_url(campaign)
    items = [make_queue_item(mass_email, make_contact()) for _ in range(4)]
    for n, item in enumerate(items):
        log(item, Action.SENT, T0 + timedelta(minutes=n))
    log(items[0], Action.CLICKED, T0 + timedelta(hours=1), tracking_url=link)
    log(items[0], Action.OPENED, T0 + timedelta(hours=1))
    log(items[1], Action.BOUNCED, T0 + timedelta(hours=2), bounce_type="hard")
    other = make_queue_item(other_mass_email, make_contact())
    log(other, Action.SENT, T0 + timedelta(hours=3))
    test_item = make_queue_item(mass_email, make_contact(), is_test=True)
    log(test_item, Action.SENT, T0, is_test=True)
    return campaign, mass_email, link


def test_statistics_are_the_panels_figures(api, campaign_with_log):
    campaign, _, link = campaign_with_log
    OutboundSettings.objects.update_or_create(pk=1, defaults={"open_tracking": True})
    stats = api.get(f"/api/campaigns/{campaign.pk}/statistics/").json()
    assert (stats["sent"], stats["opened"], stats["clicked"], stats["bounced_hard"]) == (5, 1, 1, 1)
    figures = {figure["key"]: figure for figure in stats["figures"]}
    assert figures["clicked"]["count"] == 1 and figures["clicked"]["percent"] == "20.00"
    assert figures["opened"]["by_people"] == 0  # no raw hit by a person
    assert stats["links"] == [
        {
            "tracking_url_id": link.pk,
            "name": link.name,
            "url": link.url,
            "clicked_items": 1,
            "hits": 0,
            "clicked_by_people": 0,
        }
    ]


def test_log_is_newest_first_by_pages_and_leaves_tests_out(api, campaign_with_log):
    campaign, _, _ = campaign_with_log
    url = f"/api/campaigns/{campaign.pk}/log/"
    first = api.get(url, {"page_size": 3}).json()
    assert [r["action"] for r in first["results"]] == ["sent", "bounced", "opened"]
    seen = first["results"]
    page = first
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += page["results"]
    assert len(seen) == 8 and not any(r["is_test"] for r in seen)
    dates = [r["action_date"] for r in seen]
    assert dates == sorted(dates, reverse=True)
    with_tests = api.get(url, {"include_test": "true", "page_size": 100}).json()["results"]
    assert sum(r["is_test"] for r in with_tests) == 1


def test_log_filtered_by_action_time_and_mass_email(api, campaign_with_log):
    campaign, mass_email, link = campaign_with_log
    url = f"/api/campaigns/{campaign.pk}/log/"
    clicked = api.get(url, {"action": "clicked"}).json()["results"]
    assert [(r["action"], r["tracking_url"]) for r in clicked] == [("clicked", link.pk)]
    assert clicked[0]["target_type"] == "contact" and clicked[0]["queue_item"]
    window = {"since": "2026-05-01T09:01:00Z", "until": "2026-05-01T09:03:00Z"}
    in_window = api.get(url, window).json()["results"]
    assert [r["action_date"] for r in in_window] == [
        "2026-05-01T09:02:00Z",
        "2026-05-01T09:01:00Z",
    ]
    only_one = api.get(url, {"mass_email": mass_email.pk, "action": "sent"}).json()["results"]
    assert len(only_one) == 4
    assert api.get(url, {"action": "kissed"}).status_code == 400
    assert api.get(url, {"since": "yesterday"}).status_code == 400
