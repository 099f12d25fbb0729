"""The marketer's screens in Chromium: the start page, the pre-send warnings on the mass
email page, and Cancel's confirmation (how many messages will not be sent)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from massmail.models import MassEmail, QueueItem
from tests.factories import make_mass_email, make_target_list, make_user
from tests.fixtures.sending import make_queued_mass_email, set_send_tick_every

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def log_in(browser_page, username: str = "boss") -> None:
    if username == "boss":
        make_user(username="boss", password="screens-pw", is_staff=True, is_superuser=True)
    page = browser_page.page
    browser_page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "screens-pw")
    page.locator('input[type="submit"]').click()
    page.locator("#site-name").wait_for()


def test_start_page_warnings_and_cancel_confirmation(browser_page, outbound_unlimited):
    set_send_tick_every(10)
    running = make_queued_mass_email(4, name="Spring sale")
    QueueItem.objects.filter(pk=running.queue_items.order_by("pk").first().pk).update(
        status=QueueItem.Status.SENT, sent_at=timezone.now()
    )
    nobody = make_mass_email(
        name="Nobody on it",
        target_lists=[make_target_list()],
        start_at=timezone.now() - timedelta(days=3),
    )
    page = browser_page.page
    log_in(browser_page)

    start = page.locator("#start-page")
    row = start.locator(f'#running tr[data-mass-email="{running.pk}"]')
    assert "1 sent, 0 failed of 4 (25%)" in row.inner_text()
    assert start.locator(f'#scheduled tr[data-mass-email="{nobody.pk}"]').is_visible()
    attention = start.locator("#attention").inner_text()
    assert "Nobody on it: Nobody will receive this mass email" in attention
    assert "Nobody on it: The start date" in attention
    assert "The send tick has not run yet" in attention
    browser_page.screenshot("start-page")

    start.locator(f'#scheduled tr[data-mass-email="{nobody.pk}"] a').first.click()
    checks = page.locator("#presend-checks")
    checks.locator('[data-check="empty_queue"]').wait_for()
    assert checks.locator('[data-check="start_in_past"]').is_visible()
    assert page.locator('select[name="status"]').count() == 0
    browser_page.screenshot("presend-warnings")

    browser_page.goto(f"/admin/massmail/massemail/{running.pk}/change/")
    page.get_by_role("button", name="Cancel sending").click()
    assert "3 messages will not be sent" in page.locator("#cancel-unsent").inner_text()
    browser_page.screenshot("cancel-confirmation")
    page.get_by_role("link", name="No, keep sending").click()
    page.locator("#presend-checks").wait_for()
    running.refresh_from_db()
    assert running.status == MassEmail.Status.IN_PROCESS
    page.get_by_role("button", name="Cancel sending").click()
    page.locator("#confirm-cancel").click()
    assert "Canceled" in page.locator("ul.messagelist").first.inner_text()
    running.refresh_from_db()
    assert running.status == MassEmail.Status.CANCELED
    assert running.queue_items.filter(status=QueueItem.Status.CANCELED).count() == 3
    assert page.get_by_role("button", name="Cancel sending").count() == 0


def test_send_test_picks_a_contact_by_typing_its_name(browser_page, smtp_settings, smtp_sink):
    from django.contrib.auth.models import Group

    from massmail.roles import MARKETERS
    from tests.factories import make_contact

    marketer = make_user(username="mark", password="screens-pw", is_staff=True)
    marketer.groups.add(Group.objects.get(name=MARKETERS))
    make_contact("grace@navy.example", first_name="Grace", last_name="Hopper")
    make_contact("alan@example.org", first_name="Alan", last_name="Turing")
    mass_email = make_mass_email()
    page = browser_page.page
    log_in(browser_page, "mark")

    browser_page.goto(f"/admin/massmail/massemail/{mass_email.pk}/send-test/")
    page.locator("#id_contacts + .select2 .select2-selection").click()
    page.locator(".select2-container--open .select2-search__field").fill("hop")
    option = page.locator(".select2-results__option", has_text="Hopper")
    option.wait_for()
    # The search narrowed (select2 may still show the unfiltered list for a moment).
    expect(page.locator(".select2-results__option")).to_have_count(1)
    option.click()
    browser_page.screenshot("send-test-picked")
    page.locator('input[type="submit"][value="Send test"]').click()
    page.locator("ul.messagelist").first.wait_for()
    assert sorted(smtp_sink.recipients()) == ["grace@navy.example", marketer.email]
