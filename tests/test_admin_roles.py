"""Marketers see the marketing screens; administrators also see the sending settings."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command

from massmail.roles import MARKETERS, ensure_marketers_group
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
    client.session_user = user.username
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


# ---------------------------------------------------------------- forbidden changes


def _user_form(user, **changes) -> dict:
    """The user change form's fields as a browser would post them, with changes."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    if user.is_staff:
        data["is_staff"] = "on"
    data.update(changes)
    return data


def test_marketer_cannot_make_themselves_superuser(marketer_client):
    me = get_user_model().objects.get(username=marketer_client.session_user)
    url = f"/admin/auth/user/{me.pk}/change/"
    page = marketer_client.get(url)
    assert page.status_code == 200
    assert 'name="is_superuser"' not in page.content.decode()
    administrators = Group.objects.create(name="Administrators")
    response = marketer_client.post(
        url, _user_form(me, is_superuser="on", groups=[administrators.pk])
    )
    assert response.status_code == 403
    me.refresh_from_db()
    assert not me.is_superuser and list(me.groups.all()) == [Group.objects.get(name=MARKETERS)]
    password = marketer_client.post(
        f"/admin/auth/user/{me.pk}/password/", {"password1": "x" * 20, "password2": "x" * 20}
    )
    assert password.status_code == 403


def test_marketer_cannot_change_users_groups_or_administration(marketer_client):
    other = make_user()
    forbidden_posts = {
        f"/admin/auth/user/{other.pk}/change/": _user_form(other, is_staff="on"),
        "/admin/auth/user/add/": {"username": "new", "password1": "x" * 20, "password2": "x" * 20},
        f"/admin/auth/user/{other.pk}/delete/": {"post": "yes"},
        "/admin/auth/group/add/": {"name": "Mine", "permissions": []},
        "/admin/massmail/outboundsettings/1/change/": {"max_per_hour": "100000"},
        "/admin/bounces/groupemailaccount/add/": {"name": "x", "imap_host": "evil.example"},
        "/admin/django_celery_beat/periodictask/add/": {"name": "x", "task": "x"},
        "/admin/django_celery_beat/intervalschedule/add/": {"every": "1", "period": "seconds"},
        "/admin/django_celery_beat/crontabschedule/add/": {"minute": "*"},
    }
    for url, data in forbidden_posts.items():
        assert marketer_client.post(url, data).status_code == 403, url
    for url in ["/admin/auth/group/", "/admin/django_celery_beat/crontabschedule/"]:
        assert marketer_client.get(url).status_code == 403, url
    other.refresh_from_db()
    assert not other.is_staff
    assert not get_user_model().objects.filter(username="new").exists()
    assert not Group.objects.filter(name="Mine").exists()


def test_marketer_sees_queue_items_and_import_runs_read_only(marketer_client, tmp_path):
    from massmail.models import QueueItem
    from targets.models import ImportRun, primary_email_of
    from tests.factories import make_contact, make_mass_email, make_target_list

    contact = make_contact()
    mass_email = make_mass_email(target_lists=[make_target_list(contact)])
    item = QueueItem.objects.create(
        mass_email=mass_email, email_address=primary_email_of(contact), status="sent"
    )
    run = ImportRun.objects.create(
        target_list=make_target_list(),
        target_type=ContentType.objects.get_for_model(contact),
        file_name="people.csv",
        checksum="0" * 64,
        mapping={"email": "Email Address"},
        status=ImportRun.Status.DONE,
        errors=[[3, "<b>not a valid email address</b>"]],
        error_count=1,
    )
    for url, data in {
        f"/admin/massmail/queueitem/{item.pk}/change/": {"status": "pending"},
        f"/admin/targets/importrun/{run.pk}/change/": {"status": "pending", "line_done": "0"},
    }.items():
        page = marketer_client.get(url)
        assert page.status_code == 200, url
        assert 'name="status"' not in page.content.decode(), url
        assert marketer_client.post(url, data).status_code == 403, url
    item.refresh_from_db()
    run.refresh_from_db()
    assert item.status == "sent" and run.status == ImportRun.Status.DONE


def test_import_run_errors_and_mapping_render_as_tables(admin_client):
    from targets.models import ImportRun
    from tests.factories import make_target_list

    run = ImportRun.objects.create(
        target_list=make_target_list(),
        target_type=ContentType.objects.get(app_label="targets", model="contact"),
        file_name="people.csv",
        checksum="0" * 64,
        mapping={"email": "Email Address", "first_name": "First Name"},
        errors=[[3, "<b>not a valid</b> email address"], [7, "no email address"]],
        error_count=5,
    )
    page = admin_client.get(f"/admin/targets/importrun/{run.pk}/change/").content.decode()
    assert "<tr><td>3</td><td>&lt;b&gt;not a valid&lt;/b&gt; email address</td></tr>" in page
    assert "<tr><td>7</td><td>no email address</td></tr>" in page
    assert "... and 3 more" in page
    assert "<tr><td>email</td><td>Email Address</td></tr>" in page
    assert "[[3," not in page and "&lt;div&gt;" not in page


def test_privileged_user_fields_are_read_only_for_a_non_superuser_with_change_user(client):
    user_manager = make_user(is_staff=True)
    user_manager.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="auth", codename__endswith="_user")
    )
    client.force_login(user_manager)
    url = f"/admin/auth/user/{user_manager.pk}/change/"
    assert 'name="is_superuser"' not in client.get(url).content.decode()
    response = client.post(url, _user_form(user_manager, is_superuser="on", first_name="Renamed"))
    assert response.status_code == 302
    user_manager.refresh_from_db()
    assert user_manager.first_name == "Renamed" and not user_manager.is_superuser


def test_role_setup_removes_permissions_granted_earlier_and_grants_only_the_whitelist():
    group = Group.objects.get(name=MARKETERS)
    group.permissions.add(Permission.objects.get(codename="change_user"))
    ensure_marketers_group()
    granted = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in group.permissions.select_related("content_type")
    }
    assert "auth.change_user" not in granted and "auth.view_user" in granted
    forbidden_apps = {"django_celery_beat", "admin", "sessions", "contenttypes"}
    assert not {name for name in granted if name.split(".")[0] in forbidden_apps}
    for codename in [
        "auth.add_user",
        "auth.delete_user",
        "auth.change_group",
        "auth.add_permission",
        "massmail.change_outboundsettings",
        "massmail.view_outboundsettings",
        "bounces.view_groupemailaccount",
        "bounces.change_groupemailaccount",
        "massmail.change_queueitem",
        "targets.change_importrun",
        "campaigns.change_campaignlogrecord",
    ]:
        assert codename not in granted, codename
    for codename in ["massmail.change_massemail", "targets.add_targetlist", "testapp.add_partner"]:
        assert codename in granted, codename
