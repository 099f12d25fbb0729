"""A marketer tries, in a real browser, to make themselves an administrator, and cannot.

Chromium logs in as a member of Marketers (the role `massmail.roles` sets up), opens
their own user page (no superuser, staff or groups field to tick), posts the change
anyway from the page with its own CSRF token, as a hand-made form would, and opens
every administration screen: each answers 403 (or 404 where the admin has no page),
and nothing changed in the database.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from massmail.models import OutboundSettings
from massmail.roles import MARKETERS
from tests.factories import make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "escalation-pw"
ADMINISTRATION = [
    "/admin/auth/group/",
    "/admin/auth/group/add/",
    "/admin/auth/permission/",
    "/admin/auth/user/add/",
    "/admin/massmail/outboundsettings/",
    "/admin/massmail/outboundsettings/1/change/",
    "/admin/bounces/groupemailaccount/",
    "/admin/bounces/groupemailaccount/add/",
    "/admin/django_celery_beat/periodictask/",
    "/admin/django_celery_beat/periodictask/add/",
    "/admin/django_celery_beat/intervalschedule/",
]
# Fields of the user change form that would make the marketer an administrator.
PRIVILEGED = ["is_superuser", "is_staff", "groups", "user_permissions"]


def log_in(browser_page, username: str) -> None:
    page = browser_page.page
    browser_page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.locator('input[type="submit"]').click()
    page.locator("#site-name").wait_for()


def post_from_page(page, url: str, fields: dict[str, str | list[str]]) -> int:
    """POST a form from the open page with its CSRF token, as a hand-made form would."""
    return page.evaluate(
        """async ([url, fields]) => {
            const body = new URLSearchParams();
            const token = document.querySelector('[name=csrfmiddlewaretoken]');
            body.append('csrfmiddlewaretoken', token ? token.value : '');
            for (const [name, value] of Object.entries(fields)) {
                for (const one of [].concat(value)) body.append(name, one);
            }
            const response = await fetch(url, {method: 'POST', body, redirect: 'manual'});
            return response.status;
        }""",
        [url, fields],
    )


def test_a_marketer_cannot_escalate_through_the_admin(browser_page):
    me = make_user(username="mark", password=PASSWORD, is_staff=True)
    marketers = Group.objects.get(name=MARKETERS)
    me.groups.add(marketers)
    administrators = Group.objects.create(name="Administrators")
    OutboundSettings.load()
    page = browser_page.page
    log_in(browser_page, "mark")

    own_page = f"/admin/auth/user/{me.pk}/change/"
    assert browser_page.goto(own_page).status == 200
    for field in PRIVILEGED:
        assert page.locator(f'[name="{field}"]').count() == 0, field
    assert page.locator('input[name="_save"]').count() == 0
    browser_page.screenshot("own-user-page")

    forged = {
        "username": "mark",
        "email": me.email,
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "groups": [str(marketers.pk), str(administrators.pk)],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    assert post_from_page(page, own_page, forged) == 403
    assert post_from_page(page, f"/admin/auth/user/{me.pk}/password/", {}) == 403
    assert post_from_page(page, "/admin/auth/group/add/", {"name": "Mine"}) == 403
    settings_url = "/admin/massmail/outboundsettings/1/change/"
    assert post_from_page(page, settings_url, {"max_per_hour": "100000"}) == 403

    for url in ADMINISTRATION:
        status = browser_page.goto(url).status
        assert status in (403, 404), (url, status)
    browser_page.goto("/admin/")
    index = page.locator("#content-main").inner_text()
    for name in ["Groups", "Outbound email settings", "Group email accounts", "Scheduled jobs"]:
        assert name not in index, name
    browser_page.screenshot("index")

    me.refresh_from_db()
    assert not me.is_superuser and me.is_staff
    assert list(me.groups.all()) == [marketers]
    assert not me.user_permissions.exists()
    assert not Group.objects.filter(name="Mine").exists()
    assert OutboundSettings.load().max_per_hour == 100
