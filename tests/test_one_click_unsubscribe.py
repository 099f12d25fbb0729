"""RFC 8058 one-click: a bare POST of List-Unsubscribe=One-Click unsubscribes; a GET never does."""

from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.test.client import MULTIPART_CONTENT, encode_multipart

from campaigns.models import CampaignLogRecord
from massmail.sending import tick
from targets.models import EmailAddress, TargetListMember
from tests.factories import make_campaign, make_contact, make_mass_email, make_target_list
from tests.fixtures.sending import make_queued_mass_email, set_outbound
from tests.fixtures.tracking import make_sent_item
from tracking import links

pytestmark = pytest.mark.django_db

GMAIL_AGENT = "Mozilla/5.0 (compatible; Google-List-Unsubscribe)"


@pytest.fixture
def item():
    contact = make_contact()
    mass_email = make_mass_email(make_campaign([make_target_list(contact)]), opt_out_entirely=True)
    return make_sent_item(mass_email, contact)


def _gmail_post(item):
    """As Gmail does it: multipart/form-data, no cookies, no CSRF token, no auth."""
    client = Client(enforce_csrf_checks=True)
    return client.post(
        links.unsubscribe_url("", item.uid),
        data=encode_multipart("BoUnDaRy", {"List-Unsubscribe": "One-Click"}),
        content_type="multipart/form-data; boundary=BoUnDaRy",
        HTTP_USER_AGENT=GMAIL_AGENT,
    )


def _state(item):
    return (
        EmailAddress.objects.get(pk=item.email_address_id).opt_out,
        set(TargetListMember.objects.values_list("opted_out", flat=True)),
        CampaignLogRecord.objects.filter(queue_item=item, action="opted_out").count(),
    )


def test_a_gmail_style_post_unsubscribes_with_200_and_no_redirect(item):
    assert MULTIPART_CONTENT.startswith("multipart/form-data")
    response = _gmail_post(item)
    assert response.status_code == 200 and "Location" not in response
    assert not response.cookies
    assert _state(item) == (True, {True}, 1)


def test_a_repeated_post_changes_nothing_more(item):
    _gmail_post(item)
    log = CampaignLogRecord.objects.get(action="opted_out")
    assert _gmail_post(item).status_code == 200
    assert _state(item) == (True, {True}, 1)
    assert CampaignLogRecord.objects.get(action="opted_out").pk == log.pk


def test_an_urlencoded_post_works_too(item):
    response = Client(enforce_csrf_checks=True).post(
        links.unsubscribe_url("", item.uid), {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert _state(item) == (True, {True}, 1)


@pytest.mark.parametrize("body", ["List-Unsubscribe=One-Click\r\n", "List-Unsubscribe=One-Click\n"])
def test_a_post_whose_body_ends_with_a_line_break_unsubscribes(item, body):
    """RFC 8058 gives the body as a line; some senders of the POST end it with CRLF."""
    response = Client(enforce_csrf_checks=True).post(
        links.unsubscribe_url("", item.uid),
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_USER_AGENT=GMAIL_AGENT,
    )
    assert response.status_code == 200
    assert _state(item) == (True, {True}, 1)


def test_get_and_head_only_show_the_confirmation_page(item):
    client = Client()
    assert client.get(links.unsubscribe_url("", item.uid)).status_code == 200
    assert client.head(links.unsubscribe_url("", item.uid)).status_code == 200
    assert _state(item) == (False, {False}, 0)


def test_a_bare_post_without_the_one_click_field_needs_the_csrf_token(item):
    response = Client(enforce_csrf_checks=True).post(
        links.unsubscribe_url("", item.uid), {"List-Unsubscribe": "Other", "action": "unsubscribe"}
    )
    assert response.status_code == 403
    assert _state(item) == (False, {False}, 0)


def test_the_header_of_a_sent_message_unsubscribes_in_one_click(smtp_settings, smtp_sink):
    set_outbound(site_url="https://news.example.com", max_per_hour=1000, max_per_batch=None)
    mass_email = make_queued_mass_email(addresses=["ann@example.com"])
    assert tick().sent == 1
    message = smtp_sink.received[0].message()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://news.example.com/u/")
    response = Client(enforce_csrf_checks=True).post(
        urlsplit(url).path,
        data=encode_multipart("BoUnDaRy", {"List-Unsubscribe": "One-Click"}),
        content_type="multipart/form-data; boundary=BoUnDaRy",
    )
    assert response.status_code == 200
    assert TargetListMember.objects.get(target_list__mass_emails=mass_email).opted_out
