"""A person subscribes in Chromium through a form embedded on another site, then confirms."""

from datetime import timedelta

import pytest
import time_machine

from subscriptions.models import ConsentRecord
from subscriptions.views import snippet
from targets.models import Lead, TargetListMember
from tests.fixtures.sending import set_outbound
from tests.subscription_factories import confirm_link, make_form

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_subscribe_from_another_origin_and_confirm(
    request, browser_page, other_origin, smtp_settings, smtp_sink
):
    set_outbound(site_url=browser_page.base_url)
    form = make_form(extra_fields=["city"])
    shop = other_origin.serve("<h1>The shop</h1>" + snippet(form))
    assert not shop.startswith(browser_page.base_url), "another origin"

    page = browser_page.page
    page.goto(shop)
    token = page.locator("input[name=token]")
    page.wait_for_function("document.querySelector('input[name=token]').value.length > 20")
    page.get_by_label("Email").fill("ann@example.com")
    page.get_by_label("First name").fill("Ann")
    page.get_by_label("Last name").fill("Example")
    page.get_by_label("City").fill("Lyon")
    assert token.input_value()
    browser_page.screenshot("form")
    # A person takes a while to type; the clock stays ahead for the rest of the test.
    clock = time_machine.travel(timedelta(seconds=20))
    clock.start()
    request.addfinalizer(clock.stop)
    page.get_by_role("button", name="Subscribe").click()
    page.locator("#thanks").wait_for()
    assert page.url == f"{browser_page.base_url}/subscribe/{form.key}/thanks/"
    assert not Lead.objects.exists()

    (received,) = smtp_sink.received
    message = received.message()
    assert received.rcpt_tos == ("ann@example.com",)
    assert message["Subject"] == "Please confirm, Ann"
    link = confirm_link(message.get_body(preferencelist=("html",)).get_content())
    assert link.startswith(browser_page.base_url)

    page.goto(link)
    browser_page.screenshot("confirm")
    page.get_by_role("button", name="Confirm my subscription").click()
    page.locator("#confirmed").wait_for()
    lead = Lead.objects.get()
    assert (lead.email, lead.city) == ("ann@example.com", "Lyon")
    member = TargetListMember.objects.get()
    assert member.object_id == lead.pk and member.target_list == form.target_lists.get()
    actions = list(ConsentRecord.objects.values_list("action", flat=True))
    assert actions == ["sign_up", "confirmation"]
    assert "Chrome" in ConsentRecord.objects.get(action="confirmation").user_agent
