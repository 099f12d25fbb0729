"""Every API endpoint: refused without a token, refused without the role's permission, and
allowed for a marketer, whose permissions are the admin's Marketers group's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

from massmail.models import MassEmail
from tests.api_client import make_marketer, token_client
from tests.factories import (
    make_campaign,
    make_contact,
    make_lead,
    make_mass_email,
    make_target_list,
    make_template,
    make_user,
)

pytestmark = pytest.mark.django_db


@dataclass
class World:
    target_list: Any
    contact: Any
    lead: Any
    template: Any
    campaign: Any
    mass_email: Any


@pytest.fixture
def world(db) -> World:
    contact = make_contact("ada@example.com")
    campaign = make_campaign(target_lists=[make_target_list(contact)])
    return World(
        target_list=make_target_list(contact),
        contact=contact,
        lead=make_lead("lead@example.com"),
        template=make_template(),
        campaign=campaign,
        mass_email=make_mass_email(campaign, status=MassEmail.Status.PENDING),
    )


# (method, path given the world, body given the world, status on success)
ENDPOINTS = {
    "target lists: list": ("get", lambda w: "/api/target-lists/", None, 200),
    "target lists: create": ("post", lambda w: "/api/target-lists/", {"name": "New"}, 201),
    "target lists: read": ("get", lambda w: f"/api/target-lists/{w.target_list.pk}/", None, 200),
    "target lists: change": (
        "patch",
        lambda w: f"/api/target-lists/{w.target_list.pk}/",
        {"description": "x"},
        200,
    ),
    "target lists: delete": (
        "delete",
        lambda w: f"/api/target-lists/{w.target_list.pk}/",
        None,
        204,
    ),
    "members: list": (
        "get",
        lambda w: f"/api/target-lists/{w.target_list.pk}/members/",
        None,
        200,
    ),
    "members: add": (
        "post",
        lambda w: f"/api/target-lists/{w.target_list.pk}/members/",
        {"addresses": ["lead@example.com"]},
        200,
    ),
    "members: remove": (
        "post",
        lambda w: f"/api/target-lists/{w.target_list.pk}/members/remove/",
        {"addresses": ["ada@example.com"]},
        200,
    ),
    **{
        f"{name}: {verb}": spec
        for name, obj in (("contacts", "contact"), ("leads", "lead"))
        for verb, spec in {
            "list": ("get", lambda w, n=name: f"/api/{n}/", None, 200),
            "create": (
                "post",
                lambda w, n=name: f"/api/{n}/",
                {"last_name": "New", "email": "new@example.com"},
                201,
            ),
            "read": ("get", lambda w, n=name, o=obj: f"/api/{n}/{getattr(w, o).pk}/", None, 200),
            "change": (
                "patch",
                lambda w, n=name, o=obj: f"/api/{n}/{getattr(w, o).pk}/",
                {"city": "Lyon"},
                200,
            ),
            "delete": (
                "delete",
                lambda w, n=name, o=obj: f"/api/{n}/{getattr(w, o).pk}/",
                None,
                204,
            ),
            "upsert": (
                "post",
                lambda w, n=name: f"/api/{n}/upsert/",
                {"records": [{"email": "up@example.com", "last_name": "Up"}]},
                200,
            ),
        }.items()
    },
    "templates: list": ("get", lambda w: "/api/templates/", None, 200),
    "templates: create": (
        "post",
        lambda w: "/api/templates/",
        {"name": "T", "subject": "S", "body_html": "<p>x</p>"},
        201,
    ),
    "templates: read": ("get", lambda w: f"/api/templates/{w.template.pk}/", None, 200),
    "templates: change": (
        "patch",
        lambda w: f"/api/templates/{w.template.pk}/",
        {"subject": "New"},
        200,
    ),
    "templates: delete": ("delete", lambda w: f"/api/templates/{w.template.pk}/", None, 204),
    "campaigns: list": ("get", lambda w: "/api/campaigns/", None, 200),
    "campaigns: create": ("post", lambda w: "/api/campaigns/", {"name": "C"}, 201),
    "campaigns: read": ("get", lambda w: f"/api/campaigns/{w.campaign.pk}/", None, 200),
    "campaigns: change": (
        "patch",
        lambda w: f"/api/campaigns/{w.campaign.pk}/",
        {"description": "d"},
        200,
    ),
    "campaigns: delete": ("delete", lambda w: f"/api/campaigns/{w.campaign.pk}/", None, 204),
    "campaigns: statistics": (
        "get",
        lambda w: f"/api/campaigns/{w.campaign.pk}/statistics/",
        None,
        200,
    ),
    "campaigns: log": ("get", lambda w: f"/api/campaigns/{w.campaign.pk}/log/", None, 200),
    "mass emails: list": ("get", lambda w: "/api/mass-emails/", None, 200),
    "mass emails: create": (
        "post",
        lambda w: "/api/mass-emails/",
        lambda w: {
            "campaign": w.campaign.pk,
            "name": "M",
            "start_at": "2030-01-01T09:00:00Z",
            "email_template": w.template.pk,
        },
        201,
    ),
    "mass emails: read": ("get", lambda w: f"/api/mass-emails/{w.mass_email.pk}/", None, 200),
    "mass emails: change": (
        "patch",
        lambda w: f"/api/mass-emails/{w.mass_email.pk}/",
        {"name": "Renamed"},
        200,
    ),
    "mass emails: delete": ("delete", lambda w: f"/api/mass-emails/{w.mass_email.pk}/", None, 204),
    "mass emails: schedule": (
        "post",
        lambda w: f"/api/mass-emails/{w.mass_email.pk}/schedule/",
        {"start_at": "2030-01-01T09:00:00Z"},
        200,
    ),
    "mass emails: pause": (
        "post",
        lambda w: f"/api/mass-emails/{w.mass_email.pk}/pause/",
        None,
        200,
    ),
    "mass emails: cancel": (
        "post",
        lambda w: f"/api/mass-emails/{w.mass_email.pk}/cancel/",
        None,
        200,
    ),
    "mass emails: send test": (
        "post",
        lambda w: f"/api/mass-emails/{w.mass_email.pk}/send-test/",
        {"addresses": ["tester@example.com"]},
        200,
    ),
}


def _request(client, world: World, name: str):
    method, path, body, _ = ENDPOINTS[name]
    if callable(body):
        body = body(world)
    return getattr(client, method)(path(world), body, format="json")


def _permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_endpoint_needs_a_token_and_the_roles_permission(name, world, smtp_settings):
    anonymous = _request(token_client(), world, name)
    assert anonymous.status_code == 401, anonymous.content
    assert anonymous["WWW-Authenticate"] == "Token"

    staff_without_role = _request(token_client(make_user(is_staff=True)), world, name)
    assert staff_without_role.status_code == 403, staff_without_role.content

    allowed = _request(token_client(make_marketer()), world, name)
    assert allowed.status_code == ENDPOINTS[name][3], allowed.content


def test_resume_needs_change_permission_and_a_paused_mass_email(world):
    url = f"/api/mass-emails/{world.mass_email.pk}/resume/"
    viewer = make_user(is_staff=True)
    viewer.user_permissions.add(_permission("massmail.view_massemail"))
    assert token_client(viewer).post(url).status_code == 403
    marketer = token_client(make_marketer())
    assert marketer.post(url).status_code == 409  # Pending: nothing to resume
    world.mass_email.pause()
    assert marketer.post(url).json()["status"] == MassEmail.Status.PENDING


def test_view_permission_reads_but_does_not_write(world):
    viewer = make_user(is_staff=True)
    viewer.user_permissions.add(_permission("targets.view_targetlist"))
    client = token_client(viewer)
    assert client.get("/api/target-lists/").status_code == 200
    assert client.post("/api/target-lists/", {"name": "Mine"}).status_code == 403
    assert client.get(f"/api/target-lists/{world.target_list.pk}/members/").status_code == 403


def test_a_user_who_is_not_staff_is_refused_whatever_their_permissions(world):
    outsider = make_user(is_staff=False)
    outsider.user_permissions.add(_permission("targets.view_targetlist"))
    assert token_client(outsider).get("/api/target-lists/").status_code == 403


def test_a_wrong_token_is_refused():
    client = token_client()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get("/api/target-lists/").status_code == 401


def test_marketers_get_no_token_administration():
    granted = set(make_marketer().get_all_permissions())
    assert not {p for p in granted if p.startswith("authtoken.")}
    assert ContentType.objects.filter(app_label="authtoken").exists()
