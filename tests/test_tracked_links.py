"""Tracked links: Clicked once per (item, URL), Opened with open tracking, 302 to the stored URL."""

import threading

import pytest
from django.db import connection
from django.test import Client

from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings
from tests.factories import make_campaign, make_contact, make_tracking_url
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item, make_tracked_message
from tests.services import require_postgres
from tracking import links
from tracking.models import Hit, TrackingUrl

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    item = make_tracked_message(open_tracking=False)
    return item.mass_email.campaign, item


def _click(client, item, url, **extra):
    path = links.click_url("", item.uid, url.pk)
    return client.get(path, HTTP_USER_AGENT=BROWSER_AGENT, **extra)


def _log(item, action):
    return CampaignLogRecord.objects.filter(queue_item=item, action=action)


def test_click_redirects_to_the_stored_url_and_logs_once(setup, hit_writer):
    campaign, item = setup
    url = make_tracking_url(campaign, url="https://example.org/offer?a=1&b=2")
    client = Client()
    for _ in range(3):
        response = _click(client, item, url, QUERY_STRING="next=https://evil.test/")
        assert response.status_code == 302
        assert response["Location"] == "https://example.org/offer?a=1&b=2"
        assert "no-store" in response["Cache-Control"]
    clicked = _log(item, CampaignLogRecord.Action.CLICKED).get()
    assert clicked.tracking_url == url and clicked.campaign == campaign
    assert clicked.email_address == item.email_address.address and not clicked.is_test
    assert (clicked.content_type_id, clicked.object_id) == (item.content_type_id, item.object_id)
    # Open tracking is off by default: no Opened entry.
    assert not _log(item, CampaignLogRecord.Action.OPENED).exists()
    # Every hit is kept raw.
    assert Hit.objects.filter(queue_item=item, kind="click", tracking_url=url).count() == 3


def test_each_tracking_url_is_logged_once_and_opened_once_with_open_tracking(setup, hit_writer):
    campaign, item = setup
    OutboundSettings.objects.update_or_create(pk=1, defaults={"open_tracking": True})
    first, second = make_tracking_url(campaign), make_tracking_url(campaign)
    client = Client()
    for url in (first, second, first, second):
        assert _click(client, item, url).status_code == 302
    clicked = _log(item, CampaignLogRecord.Action.CLICKED)
    assert sorted(clicked.values_list("tracking_url_id", flat=True)) == [first.pk, second.pk]
    assert _log(item, CampaignLogRecord.Action.OPENED).count() == 1


def test_show_message_renders_sanitised_markdown(setup, hit_writer):
    campaign, item = setup
    url = make_tracking_url(
        campaign,
        url="",
        action=TrackingUrl.Action.SHOW_MESSAGE,
        message="# Thanks\n\nSee **you** soon.<script>alert(1)</script>"
        '<a href="javascript:alert(2)">x</a>',
    )
    response = _click(Client(), item, url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Thanks</h1>" in html and "<strong>you</strong>" in html
    assert "<script>alert" not in html and "javascript:" not in html
    assert _log(item, CampaignLogRecord.Action.CLICKED).count() == 1


def test_a_test_send_is_logged_as_test(setup, hit_writer):
    campaign, item = setup
    contact = make_contact()
    test_item = make_sent_item(item.mass_email, contact, is_test=True)
    url = make_tracking_url(campaign)
    assert _click(Client(), test_item, url).status_code == 302
    assert _log(test_item, CampaignLogRecord.Action.CLICKED).get().is_test


def test_a_tracking_url_of_another_campaign_is_not_found(setup, hit_writer):
    _, item = setup
    other = make_tracking_url(make_campaign())
    assert _click(Client(), item, other).status_code == 404
    assert not CampaignLogRecord.objects.exists() and not Hit.objects.exists()


def test_only_get_and_head_are_allowed(setup):
    campaign, item = setup
    url = make_tracking_url(campaign)
    response = Client().post(links.click_url("", item.uid, url.pk))
    assert response.status_code == 405
    assert not Hit.objects.exists()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_get_405_not_a_csrf_403(setup, method):
    """As a browser or scanner sends them: no CSRF cookie, so CSRF would refuse first."""
    campaign, item = setup
    url = make_tracking_url(campaign)
    client = Client(enforce_csrf_checks=True)
    for path in (links.click_url("", item.uid, url.pk), links.open_pixel_url("", item.uid)):
        response = getattr(client, method)(path)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert not Hit.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_click_survives_a_database_connection_dropped_in_between():
    require_postgres()
    item = make_tracked_message(open_tracking=False)
    campaign = item.mass_email.campaign
    first, second = make_tracking_url(campaign), make_tracking_url(campaign)
    client = Client()
    assert _click(client, item, first).status_code == 302
    pid = connection.connection.info.backend_pid

    def terminate() -> None:
        with connection.cursor() as cursor:  # this thread's own connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        connection.close()

    worker = threading.Thread(target=terminate)
    worker.start()
    worker.join()
    # The hit statement finds the connection dead, reconnects, prepares again, succeeds.
    assert _click(client, item, second).status_code == 302
    assert connection.connection.info.backend_pid != pid
    assert _log(item, CampaignLogRecord.Action.CLICKED).count() == 2
    assert Hit.objects.filter(queue_item=item).count() == 2


@pytest.mark.django_db(transaction=True)
def test_asynchronous_commit_of_hits_when_chosen(settings):
    """Opt-in trade-off; outside any transaction, so the statement commits on its own."""
    settings.MASSMAIL_HITS_ASYNC_COMMIT = True
    item = make_tracked_message(open_tracking=False)
    campaign = item.mass_email.campaign
    url = make_tracking_url(campaign)
    assert _click(Client(), item, url).status_code == 302
    assert _log(item, CampaignLogRecord.Action.CLICKED).count() == 1
    assert Hit.objects.get().queue_item_id == item.pk
