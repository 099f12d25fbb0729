"""Marketers see the marketing screens; administrators also see the sending settings."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from massmail.roles import MARKETERS
from tests.factories import make_user

pytestmark = pytest.mark.django_db

MARKETING = [
    "/admin/targets/account/",
    "/admin/targets/contact/",
    "/admin/targets/lead/",
    "/admin/auth/user/",
    "/admin/targets/targetlist/",
    "/admin/campaigns/emailtemplate/",
    "/admin/campaigns/campaign/",
    "/admin/massmail/massemail/",
    "/admin/tracking/trackingurl/",
    "/admin/campaigns/campaignlogrecord/",
]
ADMINISTRATION = [
    "/admin/massmail/outboundsettings/",
    "/admin/bounces/groupemailaccount/",
    "/admin/django_celery_beat/periodictask/",
]


@pytest.fixture
def marketer_client(client):
    user = make_user(is_staff=True)
    user.groups.add(Group.objects.get(name=MARKETERS))
    client.force_login(user)
    return client


def test_marketer_sees_marketing_screens_but_not_administration(marketer_client):
    for url in MARKETING:
        assert marketer_client.get(url).status_code == 200, url
    for url in ADMINISTRATION:
        assert marketer_client.get(url).status_code == 403, url
    index = marketer_client.get("/admin/").content.decode()
    assert "Contacts" in index and "Campaign log records" in index
    assert "Outbound email settings" not in index and "Scheduled jobs" not in index


def test_administrator_sees_everything_and_the_demo_pages_render(admin_client):
    call_command("seed_demo")
    for url in MARKETING + ADMINISTRATION:
        response = admin_client.get(url, follow=True)
        assert response.status_code == 200, url
    index = admin_client.get("/admin/").content.decode()
    for name in ["Outbound email settings", "Group email accounts", "Scheduled jobs"]:
        assert name in index
