"""A person unsubscribes in a real browser from a message the SMTP server received."""

import re

import pytest

from campaigns.models import CampaignLogRecord
from massmail.models import QueueItem
from massmail.sending import tick
from targets.models import TargetListMember
from tests.fixtures.sending import make_queued_mass_email, set_outbound

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _unsubscribe_link(received) -> str:
    message = received.message()
    header = re.fullmatch(r"<([^>]+)>", message["List-Unsubscribe"]).group(1)
    # The live server is http: no one-click POST is offered then (RFC 8058 needs https).
    assert "List-Unsubscribe-Post" not in message
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f'href="{header}"' in html, "the body's unsubscribe link is the header's URL"
    return header


def test_unsubscribe_and_subscribe_again_in_a_browser(browser_page, smtp_settings, smtp_sink):
    set_outbound(
        site_url=browser_page.base_url, max_per_hour=1000, max_per_batch=None, open_tracking=True
    )
    mass_email = make_queued_mass_email(addresses=["ann@example.com"])
    target_list = mass_email.target_lists.get()
    assert tick().sent == 1
    item = QueueItem.objects.get(mass_email=mass_email)
    link = _unsubscribe_link(smtp_sink.received[0])
    assert link.startswith(browser_page.base_url + "/u/")

    page = browser_page.page
    browser_page.goto(link)
    assert page.locator("#lists").inner_text().strip() == target_list.name
    browser_page.screenshot("confirm")
    member = TargetListMember.objects.get(target_list=target_list)
    assert not member.opted_out, "opening the page changes nothing"

    page.get_by_role("button", name="Unsubscribe").click()
    page.locator("#done").wait_for()
    assert page.locator("#done").inner_text() == "You have been unsubscribed."
    browser_page.screenshot("unsubscribed")
    member.refresh_from_db()
    assert member.opted_out
    log = CampaignLogRecord.objects.filter(queue_item=item, action="opted_out")
    assert log.count() == 1

    page.get_by_role("button", name="Subscribe again").click()
    page.locator("#done").wait_for()
    assert page.locator("#done").inner_text() == "You are subscribed again."
    member.refresh_from_db()
    assert not member.opted_out and not log.exists()
    assert page.get_by_role("button", name="Unsubscribe").is_visible()
