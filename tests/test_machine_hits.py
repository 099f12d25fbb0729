"""Machine hits (scanners, image proxies, the hidden link) are told apart from people."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from tests.factories import make_tracking_url
from tests.fixtures.tracking import BROWSER_AGENT, make_tracked_message
from tracking import links, rules
from tracking.models import Hit

pytestmark = pytest.mark.django_db

SCANNER_AGENT = "Mozilla/5.0 (compatible; Barracuda Sentinel link scanner)"


@pytest.fixture
def message():
    item = make_tracked_message()
    urls = [make_tracking_url(item.mass_email.campaign) for _ in range(3)]
    return item, urls


def _get(path: str, agent: str, method: str = "get"):
    return getattr(Client(), method)(path, HTTP_USER_AGENT=agent)


def _hit(item, url) -> Hit:
    return Hit.objects.filter(queue_item=item, tracking_url=url).latest("id")


def test_a_scanner_burst_is_machine_and_a_later_browser_click_is_human(message, hit_writer):
    item, urls = message
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for url in urls:
            assert _get(links.click_url("", item.uid, url.pk), SCANNER_AGENT).status_code == 302
            clock.shift(timedelta(milliseconds=200))
        _get(links.open_pixel_url("", item.uid), SCANNER_AGENT)
        burst = Hit.objects.filter(queue_item=item)
        assert burst.count() == 4 and not burst.filter(is_machine=False).exists()
        clock.shift(timedelta(minutes=20))
        assert _get(links.click_url("", item.uid, urls[0].pk), BROWSER_AGENT).status_code == 302
    person = _hit(item, urls[0])
    assert not person.is_machine and person.machine_reason == ""
    # People only: one queue item with a human hit; the log keeps the raw entries.
    assert Hit.objects.filter(is_machine=False).values("queue_item").distinct().count() == 1
    assert CampaignLogRecord.objects.filter(action="clicked").count() == 3


def test_several_links_in_one_burst_reclassify_the_earlier_hits(message, hit_writer):
    item, urls = message
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _get(links.click_url("", item.uid, urls[0].pk), BROWSER_AGENT)
        assert not _hit(item, urls[0]).is_machine
        clock.shift(timedelta(seconds=1))
        _get(links.click_url("", item.uid, urls[1].pk), BROWSER_AGENT)
    assert _hit(item, urls[1]).machine_reason == rules.REASON_LINKS_BURST
    assert _hit(item, urls[0]).machine_reason == rules.REASON_LINKS_BURST


def test_the_same_link_twice_is_still_a_person(message, hit_writer):
    item, urls = message
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _get(links.click_url("", item.uid, urls[0].pk), BROWSER_AGENT)
        clock.shift(timedelta(seconds=1))
        _get(links.click_url("", item.uid, urls[0].pk), BROWSER_AGENT)
    assert not Hit.objects.filter(is_machine=True).exists()


def test_the_hidden_link_marks_its_burst_as_machine(message, hit_writer):
    item, urls = message
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _get(links.open_pixel_url("", item.uid), BROWSER_AGENT)
        clock.shift(timedelta(seconds=1))
        assert _get(links.trap_url("", item.uid), BROWSER_AGENT).status_code == 200
        clock.shift(timedelta(seconds=1))
        _get(links.click_url("", item.uid, urls[0].pk), BROWSER_AGENT)
    trap = Hit.objects.get(kind="trap")
    assert trap.is_machine and trap.machine_reason == rules.REASON_TRAP
    others = Hit.objects.exclude(kind="trap")
    assert {h.machine_reason for h in others} == {rules.REASON_TRAP_BURST}
    # The trap writes no log entry of its own.
    assert set(CampaignLogRecord.objects.values_list("action", flat=True)) == {"opened", "clicked"}


def test_head_requests_and_hits_right_after_sending_are_machine(message, hit_writer):
    item, urls = message
    response = _get(links.click_url("", item.uid, urls[0].pk), BROWSER_AGENT, method="head")
    assert response.status_code == 302
    assert _hit(item, urls[0]).machine_reason == rules.REASON_HEAD
    item.sent_at = timezone.now() - timedelta(seconds=3)
    item.save(update_fields=["sent_at"])
    _get(links.open_pixel_url("", item.uid), BROWSER_AGENT)
    assert Hit.objects.get(kind="open").machine_reason == rules.REASON_PROMPT


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0",  # Apple Mail Privacy Protection
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "curl/8.5.0",
        "python-requests/2.32.3",
        "",
    ],
)
def test_image_proxies_and_http_libraries_are_machine(message, agent):
    item, _ = message
    assert _get(links.open_pixel_url("", item.uid), agent).status_code == 200
    assert Hit.objects.get(kind="open").is_machine


def test_opening_the_unsubscribe_page_is_kept_as_a_hit(message):
    item, _ = message
    assert _get(links.unsubscribe_url("", item.uid), BROWSER_AGENT).status_code == 200
    hit = Hit.objects.get()
    assert hit.kind == "unsubscribe_page" and not hit.is_machine
