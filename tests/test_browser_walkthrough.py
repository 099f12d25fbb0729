"""The user documentation's "How to send mass email", walked in a real browser.

Chromium (Debian's, driven by Playwright) against the live server, logged into the
admin: a target list with existing contacts (added with the list action), a
campaign of type Newsletter with the list and a tracking URL, an email template
using it, a mass email (Pending, starting now), the pre-send checks and the
preview, Send Test, the send tick (the management command, as cron runs it) to
an SMTP sink, a recipient's click, then the campaign page: statistics, the log
filtered, the CSV export, and a target list made from the log. A screenshot of
each step is saved under test-artifacts/walkthrough/.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from campaigns.models import Campaign, CampaignLogRecord
from massmail.models import MassEmail
from targets.models import Contact, TargetList
from tests.factories import make_contact, make_user
from tests.fixtures.sending import set_outbound

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "walkthrough"
PEOPLE = [("Alice", "Archer"), ("Bob", "Baker"), ("Carol", "Cooper")]


class Walk:
    """The browser page plus numbered screenshots of each step."""

    def __init__(self, browser_page) -> None:
        self.browser = browser_page
        self.page = browser_page.page
        self.step = 0
        SHOTS.mkdir(parents=True, exist_ok=True)

    def goto(self, path: str) -> None:
        self.browser.goto(path)

    def shot(self, label: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(SHOTS / f"{self.step:02d}-{label}.png"), full_page=True)

    def save(self, name: str = "_save") -> None:
        self.page.locator(f'input[name="{name}"]').click()
        self.page.wait_for_load_state()

    def messages(self) -> str:
        return self.page.locator("ul.messagelist").first.inner_text()


def log_in(walk: Walk) -> None:
    make_user(
        username="marketer",
        email="marketer@example.com",
        password="walkthrough-pw",
        is_staff=True,
        is_superuser=True,
    )
    walk.goto("/admin/login/?next=/admin/")
    walk.page.fill("#id_username", "marketer")
    walk.page.fill("#id_password", "walkthrough-pw")
    walk.page.locator('input[type="submit"]').click()
    walk.page.locator("#site-name").wait_for()
    walk.shot("logged-in")


def add_contacts_to_new_list(walk: Walk, name: str) -> TargetList:
    walk.goto("/admin/targets/contact/")
    walk.page.locator("#action-toggle").check()
    walk.page.select_option('select[name="action"]', "add_to_target_list")
    walk.shot("contacts-selected")
    walk.page.locator('button[name="index"]').click()
    walk.page.fill("#id_new_list_name", name)
    walk.page.locator('input[name="apply"]').click()
    assert "3 record(s) added to" in walk.messages()
    walk.shot("contacts-added-to-list")
    return TargetList.objects.get(name=name)


def create_campaign(walk: Walk, list_name: str) -> Campaign:
    walk.goto("/admin/campaigns/campaign/add/")
    walk.page.fill("#id_name", "Spring newsletter")
    walk.page.select_option("#id_type", "newsletter")
    walk.page.select_option("#id_target_lists_from", label=list_name)
    walk.page.locator("#id_target_lists_add").click()
    walk.shot("campaign-form")
    walk.save("_continue")
    campaign = Campaign.objects.get(name="Spring newsletter")
    # A tracking URL that shows a message (the network is closed: no outside redirect).
    walk.page.get_by_text("Add another Tracking URL").click()
    walk.page.fill("#id_tracking_urls-0-name", "Spring offer")
    walk.page.select_option("#id_tracking_urls-0-action", "show_message")
    walk.page.fill(
        "#id_tracking_urls-0-message", "Thanks for your interest in our **spring offer**."
    )
    walk.save("_continue")
    walk.shot("campaign-with-tracking-url")
    return campaign


def create_template(walk: Walk, tracking_code: str) -> None:
    walk.goto("/admin/campaigns/emailtemplate/add/")
    walk.page.fill("#id_name", "Spring template")
    walk.page.fill("#id_subject", "Spring news for {Person.firstName}")
    walk.page.fill(
        "#id_body_html",
        "<p>Dear {Person.firstName},</p>"
        f'<p><a href="{tracking_code}">See our spring offer</a></p>'
        '<p><a href="{optOutUrl}">Unsubscribe</a></p>',
    )
    walk.shot("template-form")
    walk.save()
    assert "was added successfully" in walk.messages()


def pick_autocomplete(walk: Walk, field_id: str, text: str) -> None:
    walk.page.locator(f"#{field_id} + .select2 .select2-selection").click()
    walk.page.locator(".select2-search__field").fill(text)
    walk.page.locator(".select2-results__option", has_text=text).click()


def create_mass_email(walk: Walk, campaign: Campaign) -> MassEmail:
    walk.goto(f"/admin/massmail/massemail/add/?campaign={campaign.pk}")
    walk.page.fill("#id_name", "Spring mail")
    assert walk.page.locator("#id_status").input_value() == "pending"
    start = timezone.localtime(timezone.now() - timedelta(minutes=2))
    walk.page.fill("#id_start_at_0", start.strftime("%Y-%m-%d"))
    walk.page.fill("#id_start_at_1", start.strftime("%H:%M:%S"))
    pick_autocomplete(walk, "id_email_template", "Spring template")
    walk.page.fill("#id_from_address", "news@example.com")
    walk.page.fill("#id_from_name", "Example News")
    walk.shot("mass-email-form")
    walk.save("_continue")
    return MassEmail.objects.get(name="Spring mail")


def check_and_preview(walk: Walk) -> None:
    checks = walk.page.locator("#presend-checks")
    # The live server is plain http on 127.0.0.1: the checks must say so.
    assert checks.locator('[data-check="site_url_local"]').is_visible()
    assert checks.locator('[data-check="text_generated"]').is_visible()
    walk.shot("mass-email-page-checks")
    walk.page.locator("#preview-link").click()
    assert walk.page.locator("#preview-subject").inner_text() == "Spring news for Alice"
    frame = walk.page.frame_locator("#preview-html")
    assert "Dear Alice" in frame.locator("body").inner_text()
    assert "See our spring offer" in walk.page.locator("#preview-text").inner_text()
    walk.shot("preview")


def send_test(walk: Walk, mass_email: MassEmail, smtp_sink) -> None:
    walk.goto(f"/admin/massmail/massemail/{mass_email.pk}/change/")
    walk.page.get_by_role("link", name="Send test").click()
    walk.shot("send-test-form")
    walk.page.locator('input[type="submit"][value="Send test"]').click()
    assert "Test sent to marketer@example.com" in walk.messages()
    assert smtp_sink.recipients() == ["marketer@example.com"]
    walk.shot("send-test-done")


def click_link_as(walk: Walk, smtp_sink, address: str) -> None:
    received = next(r for r in smtp_sink.received if r.rcpt_tos == (address,))
    html = received.message().get_body(("html",)).get_content()
    link = re.search(r'href="([^"]+/c/[^"]+)"', html).group(1)
    assert link.startswith(walk.browser.base_url)
    walk.goto(link)
    assert "spring offer" in walk.page.locator("body").inner_text()
    walk.shot("recipient-clicked")


def campaign_page(walk: Walk, campaign: Campaign) -> None:
    walk.goto(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    stats = walk.page.locator("#statistics")
    assert stats.locator(".stat-sent td").first.inner_text() == "3"
    assert stats.locator(".stat-clicked td").nth(0).inner_text() == "1"
    assert stats.locator(".stat-clicked td").nth(1).inner_text() == "33.33%"
    # The figures by people arrive by a second request the page's script makes.
    walk.page.locator('#campaign-panels[data-people-loaded="1"]').wait_for()
    assert walk.page.locator("svg.activity-chart polyline.series-sent").count() == 1
    assert walk.page.locator("#log tr.log-sent").count() == 3  # the test send is hidden
    walk.shot("campaign-statistics-and-log")


def filter_and_export_log(walk: Walk) -> None:
    walk.page.locator('#log a[data-filter="clicked"]').click()
    walk.page.wait_for_load_state()
    rows = walk.page.locator("#log tbody tr")
    assert rows.count() == 1 and "alice@example.com" in rows.first.inner_text()
    walk.shot("log-filtered-clicked")
    walk.page.locator("#log a.test-toggle").click()
    walk.page.wait_for_load_state()
    with walk.page.expect_download() as download:
        walk.page.locator("#log a.export-csv").click()
    body = Path(download.value.path()).read_text()
    lines = list(csv.reader(io.StringIO(body)))
    assert lines[0][1] == "Action" and [line[1] for line in lines[1:]] == ["clicked"]


def create_list_from_log(walk: Walk) -> TargetList:
    form = walk.page.locator("#target-list-from-log")
    form.locator('input[name="including"][value="sent"]').check()
    form.locator('input[name="excluding"][value="clicked"]').check()
    form.locator('input[name="name"]').fill("Spring: did not click")
    walk.shot("target-list-from-log-form")
    form.get_by_role("button", name="Create target list").click()
    walk.page.wait_for_load_state()
    assert "created with 2 member(s)" in walk.messages()
    walk.shot("target-list-created")
    return TargetList.objects.get(name="Spring: did not click")


def test_how_to_send_mass_email(browser_page, smtp_settings, smtp_sink):
    set_outbound(
        site_url=browser_page.base_url, max_per_hour=1000, max_per_batch=None, open_tracking=True
    )
    for first, last in PEOPLE:
        make_contact(email=f"{first.lower()}@example.com", first_name=first, last_name=last)
    walk = Walk(browser_page)

    log_in(walk)
    target_list = add_contacts_to_new_list(walk, "Spring readers")
    campaign = create_campaign(walk, target_list.name)
    tracking_url = campaign.tracking_urls.get()
    create_template(walk, tracking_url.code)
    mass_email = create_mass_email(walk, campaign)
    check_and_preview(walk)
    send_test(walk, mass_email, smtp_sink)

    out = io.StringIO()
    call_command("send_mass_emails", stdout=out)
    assert "sent 3" in out.getvalue(), out.getvalue()
    assert sorted(smtp_sink.recipients()[1:]) == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    walk.goto(f"/admin/massmail/massemail/{mass_email.pk}/change/")
    assert walk.page.locator("#progress .legend-sent strong").inner_text() == "3"
    walk.shot("mass-email-sent")

    click_link_as(walk, smtp_sink, "alice@example.com")
    campaign_page(walk, campaign)
    filter_and_export_log(walk)
    new_list = create_list_from_log(walk)

    members = set(new_list.members.values_list("object_id", flat=True))
    expected = set(
        Contact.objects.filter(first_name__in=["Bob", "Carol"]).values_list("pk", flat=True)
    )
    assert members == expected
    assert CampaignLogRecord.objects.filter(campaign=campaign, is_test=True).exists()
