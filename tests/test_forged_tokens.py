"""Forged, altered, truncated or misdirected tokens get a plain 404 and write nothing."""

import pytest
from django.test import Client

from campaigns.models import CampaignLogRecord
from targets.models import EmailAddress, TargetListMember
from tests.factories import make_campaign, make_tracking_url
from tests.fixtures.tracking import BROWSER_AGENT, make_tracked_message
from tracking import links
from tracking.models import Hit

pytestmark = pytest.mark.django_db


@pytest.fixture
def item():
    return make_tracked_message(opt_out_entirely=True)


def _nothing_written() -> bool:
    return not (
        Hit.objects.exists()
        or CampaignLogRecord.objects.exists()
        or EmailAddress.objects.filter(opt_out=True).exists()
        or TargetListMember.objects.filter(opted_out=True).exists()
    )


def _all_urls(item, url_id):
    return [
        links.unsubscribe_url("", item.uid),
        links.click_url("", item.uid, url_id),
        links.open_pixel_url("", item.uid),
        links.trap_url("", item.uid),
    ]


def _flip(token: str, position: int) -> str:
    char = token[position]
    return token[:position] + ("A" if char != "A" else "B") + token[position + 1 :]


def _variants(url: str) -> list[str]:
    prefix, token, suffix = url.split("/")[1], url.split("/")[2], url.split("/", 3)[3]
    forged = [_flip(token, 0), _flip(token, len(token) - 1), token[:-3], token.split(":")[0]]
    forged.append(token.split(":")[0] + ":" + "x" * 27)
    return [f"/{prefix}/{t}/{suffix}" for t in forged if t]


@pytest.mark.parametrize("method", ["get", "post"])
def test_altered_and_truncated_tokens_are_404_on_every_endpoint(item, method):
    url = make_tracking_url(item.mass_email.campaign)
    client = Client(HTTP_USER_AGENT=BROWSER_AGENT)
    for good in _all_urls(item, url.pk):
        for bad in _variants(good):
            data = {"List-Unsubscribe": "One-Click"} if method == "post" else None
            response = getattr(client, method)(bad, data)
            assert response.status_code in (404, 405), bad
    assert _nothing_written()


def test_a_token_made_for_another_purpose_is_404(item):
    wrong = f"/c/{links.open_token(item.uid)}/"
    assert Client().get(wrong).status_code == 404
    wrong = f"/u/{links.trap_token(item.uid)}/"
    assert Client().post(wrong, {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert _nothing_written()


def test_a_tracking_url_of_another_campaign_is_404(item):
    other = make_tracking_url(make_campaign())
    assert Client().get(links.click_url("", item.uid, other.pk)).status_code == 404
    assert _nothing_written()


def test_a_deleted_queue_item_is_404(item):
    url = make_tracking_url(item.mass_email.campaign)
    urls = _all_urls(item, url.pk)
    item.delete()
    for path in urls:
        assert Client().get(path).status_code == 404
    assert Client().post(urls[0], {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert _nothing_written()


def test_a_replayed_one_click_post_logs_once(item):
    path = links.unsubscribe_url("", item.uid)
    for _ in range(3):
        response = Client().post(path, {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    assert CampaignLogRecord.objects.filter(action="opted_out").count() == 1


def test_a_replayed_click_logs_once(item):
    url = make_tracking_url(item.mass_email.campaign)
    for _ in range(3):
        assert Client().get(links.click_url("", item.uid, url.pk)).status_code == 302
    assert CampaignLogRecord.objects.filter(action="clicked").count() == 1
    assert CampaignLogRecord.objects.filter(action="opened").count() == 1
    assert Hit.objects.count() == 3
