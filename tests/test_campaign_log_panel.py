"""The campaign page: statistics panel, log filters, pagination, CSV export, retargeting form."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.log import LOG_FILTERS, filtered_log
from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings
from targets.models import TargetList
from tests.factories import make_campaign, make_contact, make_mass_email, make_tracking_url
from tests.log_factories import log, make_queue_item

pytestmark = pytest.mark.django_db
Action = CampaignLogRecord.Action


@pytest.fixture
def campaign():
    """30 sent, 3 opened, 1 clicked, 1 soft bounce, 1 opted in; a test send opened."""
    campaign = make_campaign(name="Spring news")
    mass_email = make_mass_email(campaign, name="Spring mail")
    link = make_tracking_url(campaign, name="Offer")
    items = [make_queue_item(mass_email, make_contact()) for _ in range(30)]
    for item in items:
        log(item, Action.SENT)
    for item in items[:3]:
        log(item, Action.OPENED)
    log(items[0], Action.CLICKED, tracking_url=link)
    log(items[4], Action.BOUNCED, bounce_type="soft")
    log(items[5], Action.OPTED_IN)
    test_item = make_queue_item(mass_email, make_contact(), is_test=True)
    log(test_item, Action.SENT)
    log(test_item, Action.OPENED)
    settings = OutboundSettings.load()
    settings.open_tracking = True
    settings.save()
    return campaign


def change_url(campaign, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk]) + (
        f"?{query}" if query else ""
    )


@pytest.mark.parametrize(
    "log_filter, expected",
    [
        ("all", 36),
        ("sent", 30),
        ("opened", 3),
        ("clicked", 1),
        ("opted_out", 0),
        ("bounced", 1),
        ("opted_in", 1),
        ("lead_created", 0),
    ],
)
def test_filters_count_non_test_entries(campaign, log_filter, expected):
    assert filtered_log(campaign, log_filter).count() == expected


def test_test_entries_only_when_asked(campaign):
    assert filtered_log(campaign, "opened", include_test=True).count() == 4
    assert filtered_log(campaign, "all", include_test=True).count() == 38
    assert set(LOG_FILTERS) == {
        "all",
        "sent",
        "opened",
        "clicked",
        "opted_out",
        "bounced",
        "opted_in",
        "lead_created",
    }


def test_unknown_filter_is_a_clear_error(campaign):
    with pytest.raises(ValueError, match="Unknown log filter 'read'"):
        filtered_log(campaign, "read")


def test_page_shows_statistics_with_percentages(admin_client, campaign):
    page = admin_client.get(change_url(campaign)).content.decode()
    assert 'id="statistics"' in page
    assert "10.00%" in page  # opened 3 / 30
    assert "3.33%" in page  # clicked and soft-bounced 1 / 30
    assert "<svg" in page and 'class="series-sent"' in page
    assert 'id="links"' in page and "Offer" in page
    # The inlines of the foundation are still there.
    assert "Mass emails" in page or "mass_emails" in page
    assert "Spring mail" in page


def test_log_filter_and_test_toggle(admin_client, campaign):
    page = admin_client.get(change_url(campaign, log="opened")).content.decode()
    assert page.count('class="log-opened"') == 3
    assert 'class="log-sent"' not in page
    with_tests = admin_client.get(change_url(campaign, log="opened", test=1)).content.decode()
    assert with_tests.count('class="log-opened"') == 4
    unknown = admin_client.get(change_url(campaign, log="read")).content.decode()
    assert "Unknown log filter" in unknown


def test_log_is_paginated_without_counting_everything(admin_client, campaign):
    first = admin_client.get(change_url(campaign, log="sent")).content.decode()
    assert first.count('class="log-sent"') == 25
    assert 'class="log-next"' in first and 'class="log-previous"' not in first
    second = admin_client.get(change_url(campaign, log="sent", log_page=2)).content.decode()
    assert second.count('class="log-sent"') == 5
    assert 'class="log-next"' not in second and 'class="log-previous"' in second


def test_page_queries_do_not_grow_with_the_log(admin_client, campaign):
    with CaptureQueriesContext(connection) as before:
        admin_client.get(change_url(campaign, log="opened"))
    mass_email = campaign.mass_emails.get()
    for _ in range(20):
        item = make_queue_item(mass_email, make_contact())
        log(item, Action.SENT)
        log(item, Action.OPENED)
    with CaptureQueriesContext(connection) as after:
        admin_client.get(change_url(campaign, log="opened"))
    assert len(after) == len(before)


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_csv_export_is_streamed_and_follows_the_filter(admin_client, campaign):
    url = reverse("admin:campaigns_campaign_log_csv", args=[campaign.pk])
    response = admin_client.get(url, {"log": "opened"})
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "spring-news" in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0][:4] == ["Date", "Action", "Bounce type", "Email address"]
    assert len(rows) == 1 + 3 and {row[1] for row in rows[1:]} == {"opened"}
    assert len(read_csv(admin_client.get(url, {"log": "opened", "test": "1"}))) == 1 + 4
    assert len(read_csv(admin_client.get(url))) == 1 + 36
    assert admin_client.get(url, {"log": "nope"}).status_code == 400


def test_csv_cells_cannot_become_spreadsheet_formulas(admin_client, campaign):
    CampaignLogRecord.objects.create(
        campaign=campaign, action=Action.LEAD_CREATED, email_address="=HYPERLINK(1)"
    )
    url = reverse("admin:campaigns_campaign_log_csv", args=[campaign.pk])
    rows = read_csv(admin_client.get(url, {"log": "lead_created"}))
    assert rows[1][3] == "'=HYPERLINK(1)"


def test_create_target_list_from_the_page(admin_client, campaign):
    url = reverse("admin:campaigns_campaign_target_list_from_log", args=[campaign.pk])
    assert 'action="' + url + '"' in admin_client.get(change_url(campaign)).content.decode()
    response = admin_client.post(
        url, {"including": ["opened", "clicked"], "excluding": ["bounced"], "name": "Openers"}
    )
    target_list = TargetList.objects.get(name="Openers")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:targets_targetlist_change", args=[target_list.pk])
    assert target_list.members.count() == 3


def test_bad_target_list_form_shows_errors_and_creates_nothing(admin_client, campaign):
    url = reverse("admin:campaigns_campaign_target_list_from_log", args=[campaign.pk])
    no_action = admin_client.post(url, {"name": "Nothing chosen"})
    assert no_action.status_code == 200 and "This field is required" in no_action.content.decode()
    both = admin_client.post(url, {"including": ["opened"], "excluding": ["opened"], "name": "X"})
    assert "both included and excluded" in both.content.decode()
    TargetList.objects.create(name="Taken")
    taken = admin_client.post(url, {"including": ["opened"], "name": "Taken"})
    assert "already exists" in taken.content.decode()
    assert TargetList.objects.count() == 1


def test_staff_without_permission_cannot_create_lists(client, campaign, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    client.force_login(user)
    page = client.get(change_url(campaign))
    assert page.status_code == 200 and 'id="target-list-from-log"' not in page.content.decode()
    url = reverse("admin:campaigns_campaign_target_list_from_log", args=[campaign.pk])
    assert client.post(url, {"including": ["opened"], "name": "Sneaky"}).status_code == 403
    assert not TargetList.objects.filter(name="Sneaky").exists()


def test_figures_by_people_are_served_beside_the_page(admin_client, campaign):
    from datetime import UTC, datetime

    from campaigns.statistics import hit_model

    Hit = hit_model()
    if Hit is None:
        pytest.skip("tracking.Hit is not there yet")
    page = admin_client.get(change_url(campaign)).content.decode()
    assert 'data-people="opened"' in page  # filled in by the page's script
    opened = CampaignLogRecord.objects.filter(campaign=campaign, action=Action.OPENED)
    items = [record.queue_item for record in opened.filter(is_test=False)]
    link = campaign.tracking_urls.get()
    now = datetime.now(UTC)
    Hit.objects.create(queue_item=items[0], kind="open", at=now, method="GET", is_machine=True)
    Hit.objects.create(queue_item=items[1], kind="open", at=now, method="GET")
    Hit.objects.create(queue_item=items[0], kind="click", tracking_url=link, at=now, method="GET")
    test_item = opened.get(is_test=True).queue_item
    Hit.objects.create(queue_item=test_item, kind="click", tracking_url=link, at=now, method="GET")

    url = reverse("admin:campaigns_campaign_people", args=[campaign.pk])
    data = admin_client.get(url).json()
    assert data["available"] is True
    assert data["figures"]["opened"] == {"count": 2, "percent": "6.67"}  # items 0 and 1 of 30
    assert data["figures"]["clicked"] == {"count": 1, "percent": "3.33"}
    assert data["links"] == {str(link.pk): {"hits": 1, "people": 1}}  # the test click left out
