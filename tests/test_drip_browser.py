"""The whole way in Chromium: subscribe on another site, confirm, get the steps, leave a topic."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from campaigns.models import Enrolment, SequenceStep
from campaigns.sequences import advance
from massmail.sending import tick
from subscriptions.views import snippet
from targets.models import TargetListMember
from tests.factories import make_target_list
from tests.fixtures.sending import set_outbound
from tests.subscription_factories import confirm_link, make_form
from tests.test_drip_sequences import make_sequence

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _subjects(smtp_sink) -> list[str]:
    return [received.message()["Subject"] for received in smtp_sink.received]


def _html(received) -> str:
    return received.message().get_body(preferencelist=("html",)).get_content()


def test_subscribe_confirm_receive_steps_and_leave_from_the_preference_centre(
    browser_page, other_origin, smtp_settings, smtp_sink
):
    set_outbound(site_url=browser_page.base_url, max_per_hour=100)
    news = make_target_list(name="Newsletter", is_topic=True)
    product = make_target_list(name="Product updates", is_topic=True)
    form = make_form(news, product)
    sequence = make_sequence(
        news,
        [
            (timedelta(0), SequenceStep.DelayFrom.JOINING, "always"),
            (timedelta(days=2), SequenceStep.DelayFrom.PREVIOUS, "always"),
            (timedelta(days=2), SequenceStep.DelayFrom.PREVIOUS, "always"),
        ],
    )
    for step in sequence.steps.all():
        step.email_template.subject = f"Onboarding {step.position}"
        step.email_template.save()

    page = browser_page.page
    page.goto(other_origin.serve("<h1>The shop</h1>" + snippet(form)))
    page.wait_for_function("document.querySelector('input[name=token]').value.length > 20")
    page.get_by_label("Email").fill("ann@example.com")
    page.get_by_label("First name").fill("Ann")
    page.get_by_label("Last name").fill("Example")
    # A person takes a while to type: the server's clock moves on meanwhile.
    with time_machine.travel(timezone.now() + timedelta(seconds=20)):
        page.get_by_role("button", name="Subscribe").click()
        page.locator("#thanks").wait_for()
        page.goto(confirm_link(_html(smtp_sink.received[0])))
        page.get_by_role("button", name="Confirm my subscription").click()
        page.locator("#confirmed").wait_for()

        advance()
        tick()
        assert _subjects(smtp_sink)[1:] == ["Onboarding 1"], "the welcome step"

    with time_machine.travel(timezone.now() + timedelta(days=2, minutes=5)):
        advance()
        tick()
        assert _subjects(smtp_sink)[1:] == ["Onboarding 1", "Onboarding 2"]
        second = smtp_sink.received[-1].message()
        unsubscribe = second["List-Unsubscribe"].strip("<>")
        page.goto(unsubscribe)
        browser_page.screenshot("preference-centre")
        preferences = page.locator("#preferences")
        preferences.get_by_label("Newsletter").uncheck()
        assert preferences.get_by_label("Product updates").is_checked()
        preferences.get_by_role("button", name="Save my choices").click()
        page.locator("#done").wait_for()
        assert page.locator("#done").inner_text() == "Your choices are saved."
        browser_page.screenshot("saved")

    states = dict(TargetListMember.objects.values_list("target_list__name", "opted_out"))
    assert states == {"Newsletter": True, "Product updates": False}
    with time_machine.travel(timezone.now() + timedelta(days=5)):
        result = advance()
        tick()
    assert (result.queued, result.stopped) == (0, 1)
    assert _subjects(smtp_sink)[1:] == ["Onboarding 1", "Onboarding 2"], "the rest stopped"
    assert Enrolment.objects.get().stop_reason == "left the list"
