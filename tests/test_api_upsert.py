"""Contacts and leads through the API: one by one with their address, or upserted by address."""

from __future__ import annotations

import pytest

from targets.models import Contact, Lead, TargetListMember, primary_email_of
from tests.api_client import make_marketer, token_client
from tests.factories import make_contact, make_lead, make_target_list

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return token_client(make_marketer())


def test_create_read_and_change_a_contact_with_its_primary_address(api):
    created = api.post(
        "/api/contacts/", {"first_name": "Ada", "last_name": "L", "email": " Ada@Example.com"}
    )
    assert created.status_code == 201, created.content
    contact = Contact.objects.get(pk=created.json()["id"])
    assert primary_email_of(contact).address == "ada@example.com"
    assert api.get(f"/api/contacts/{contact.pk}/").json()["email"] == "ada@example.com"
    changed = api.patch(f"/api/contacts/{contact.pk}/", {"email": "new@example.com"})
    assert changed.json()["email"] == "new@example.com"
    assert primary_email_of(contact).address == "new@example.com"
    assert api.patch(f"/api/contacts/{contact.pk}/", {"city": "Lyon"}).json()["email"] == (
        "new@example.com"
    )
    bad = api.post("/api/contacts/", {"last_name": "X", "email": "not an address"})
    assert bad.status_code == 400 and "email" in bad.json()


def test_upsert_creates_updates_and_leaves_unchanged_by_primary_address(api):
    existing = make_contact("known@example.com", first_name="Old", city="Paris")
    same = make_contact("same@example.com", first_name="Same")
    target_list = make_target_list()
    response = api.post(
        "/api/contacts/upsert/",
        {
            "target_list": target_list.pk,
            "records": [
                {"email": "KNOWN@example.com", "first_name": "New", "city": ""},
                {"email": "same@example.com", "first_name": "Same"},
                {"email": "fresh@example.com", "first_name": "Fresh", "last_name": "Person"},
                {"email": "fresh@example.com", "last_name": "Twice"},
                {"email": "nolast@example.com", "first_name": "No last name"},
                {"email": "broken", "last_name": "X"},
                {"email": "x@example.com", "last_name": "X", "password": "no"},
            ],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    fresh = Contact.objects.get(last_name="Person")
    assert (body["created"], body["updated"], body["unchanged"], body["errors"]) == (1, 1, 1, 4)
    outcomes = body["records"]
    assert outcomes[0] == {
        "index": 0,
        "email": "known@example.com",
        "id": existing.pk,
        "result": "updated",
    }
    assert outcomes[1]["result"] == "unchanged" and outcomes[1]["id"] == same.pk
    assert outcomes[2] == {
        "index": 2,
        "email": "fresh@example.com",
        "id": fresh.pk,
        "result": "created",
    }
    assert [o["error"] for o in outcomes[3:]] == [
        "duplicate of record 2 (fresh@example.com)",
        "Last name is missing",
        outcomes[5]["error"],
        "unknown fields: password",
    ]
    assert "not a valid email address" in outcomes[5]["error"]
    existing.refresh_from_db()
    assert (existing.first_name, existing.city) == ("New", "Paris")  # empty keeps what is stored
    assert primary_email_of(fresh).address == "fresh@example.com"
    members = set(
        TargetListMember.objects.filter(target_list=target_list).values_list("object_id", flat=True)
    )
    assert members == {existing.pk, same.pk, fresh.pk}
    assert not Contact.objects.filter(first_name="No last name").exists()


def test_upsert_of_leads_matches_leads_only(api):
    contact = make_contact("both@example.com")
    lead = make_lead("both@example.com", status=Lead.Status.NEW)
    response = api.post(
        "/api/leads/upsert/",
        {"records": [{"email": "both@example.com", "status": "In Process"}]},
        format="json",
    ).json()
    assert response["records"][0]["id"] == lead.pk and response["updated"] == 1
    lead.refresh_from_db()
    assert lead.status == Lead.Status.IN_PROCESS
    assert Contact.objects.get(pk=contact.pk).last_name == contact.last_name


def test_upsert_into_a_list_needs_the_member_permission(api):
    from django.contrib.auth.models import Permission

    from tests.factories import make_user

    user = make_user(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_contact", "change_contact"])
    )
    client = token_client(user)
    body = {"records": [{"email": "a@example.com", "last_name": "A"}]}
    assert client.post("/api/contacts/upsert/", body, format="json").status_code == 200
    body["target_list"] = make_target_list().pk
    assert client.post("/api/contacts/upsert/", body, format="json").status_code == 403
