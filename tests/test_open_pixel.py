"""The open pixel: a 1x1 GIF, never cached, Opened once per item when open tracking is on."""

import pytest
from django.test import Client

from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings
from tests.factories import make_campaign, make_contact, make_mass_email, make_target_list
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item
from tracking import links
from tracking.models import Hit

pytestmark = pytest.mark.django_db


@pytest.fixture
def item():
    contact = make_contact()
    return make_sent_item(make_mass_email(make_campaign([make_target_list(contact)])), contact)


def _open(item, ip="203.0.113.77"):
    return Client(REMOTE_ADDR=ip).get(
        links.open_pixel_url("", item.uid), HTTP_USER_AGENT=BROWSER_AGENT
    )


def _tracking(on: bool, truncate_ip: bool = True) -> None:
    OutboundSettings.objects.update_or_create(
        pk=1, defaults={"open_tracking": on, "truncate_ip": truncate_ip}
    )


def test_pixel_is_a_gif_with_no_cache_headers_and_logs_opened_once(item, hit_writer):
    _tracking(True)
    for _ in range(3):
        response = _open(item)
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
        assert response.content.startswith(b"GIF89a") and len(response.content) < 64
        assert "no-store" in response["Cache-Control"] and response["Pragma"] == "no-cache"
    opened = CampaignLogRecord.objects.get(queue_item=item, action="opened")
    assert opened.campaign_id == item.mass_email.campaign_id and opened.tracking_url is None
    hits = Hit.objects.filter(queue_item=item, kind="open")
    assert hits.count() == 3
    # Privacy: only the /24 network is kept.
    assert set(hits.values_list("ip", flat=True)) == {"203.0.113.0"}


def test_full_ip_and_ipv6_prefix(item, hit_writer):
    _tracking(True, truncate_ip=False)
    _open(item, ip="2001:db8:1234:5678::1")
    assert Hit.objects.get().ip == "2001:db8:1234:5678::1"
    _tracking(True, truncate_ip=True)
    _open(item, ip="2001:db8:1234:5678::1")
    assert Hit.objects.latest("id").ip == "2001:db8:1234::"


def test_without_open_tracking_the_gif_is_served_and_nothing_written(item, hit_writer):
    _tracking(False)
    response = _open(item)
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert not CampaignLogRecord.objects.exists() and not Hit.objects.exists()
