"""The template editor in Chromium, as a marketer: the picker inserts codes where the
cursor is, and the preview follows the typing (once per pause, not once per key)."""

from __future__ import annotations

import pytest

from massmail.roles import ensure_marketers_group
from tests.factories import make_account, make_contact, make_user
from tracking.models import TrackingUrl

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def log_in_as_marketer(browser_page) -> None:
    marketer = make_user(username="mia", password="editor-pw", is_staff=True)
    marketer.groups.add(ensure_marketers_group())
    page = browser_page.page
    browser_page.goto("/admin/login/?next=/admin/campaigns/emailtemplate/add/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "editor-pw")
    page.locator('input[type="submit"]').click()
    page.locator("#template-authoring").wait_for()


def choose_sample(page, address: str) -> None:
    option = page.locator("#mm-sample option", has_text=address)
    page.select_option("#mm-sample", option.get_attribute("value"))


def test_picker_and_live_preview(browser_page):
    make_contact("ada@example.org", first_name="Ada")
    make_account("acme@example.org", name="Acme")
    shop = TrackingUrl.objects.create(name="Shop", url="https://shop.example.com/")
    log_in_as_marketer(browser_page)
    page = browser_page.page
    previews = []
    page.on(
        "request",
        lambda request: previews.append(request) if request.url.endswith("/preview/") else None,
    )
    frame = page.frame_locator("#mm-preview-frame")

    body = page.locator("#id_body_html")
    body.fill("<p>Hello !</p>")
    # The cursor after "Hello ", then a click on the code.
    body.evaluate("field => field.setSelectionRange(9, 9)")
    page.locator('.mm-code[data-code="{Person.firstName}"]').click()
    assert body.input_value() == "<p>Hello {Person.firstName}!</p>"
    choose_sample(page, "ada@example.org")
    frame.locator("p", has_text="Hello Ada!").wait_for()

    # Typing a fallback: the preview asks once the typing pauses.
    body.evaluate("field => field.setSelectionRange(26, 26)")
    asked_before = len(previews)
    body.press_sequentially("|there")
    assert body.input_value() == "<p>Hello {Person.firstName|there}!</p>"
    choose_sample(page, "acme@example.org")
    frame.locator("p", has_text="Hello there!").wait_for()
    # Six keys and a change of recipient: far fewer requests than keys.
    assert 1 <= len(previews) - asked_before <= 3

    # A tracking URL from the list, into the subject where the cursor is.
    subject = page.locator("#id_subject")
    subject.fill("News ")
    subject.evaluate("field => field.setSelectionRange(5, 5)")
    page.select_option("#mm-tracking-url", shop.code)
    page.locator("#mm-insert-tracking-url").click()
    assert subject.input_value() == f"News {shop.code}"
    # ...which the subject refuses: the preview says why.
    page.locator("#mm-preview-errors li", has_text="only be used in the body").wait_for()
    browser_page.screenshot("editor")
