"""The API adds and removes target list members by address or by record, set-based."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType

from targets.models import Contact, Lead, TargetListMember
from tests.api_client import make_marketer, token_client
from tests.factories import make_account, make_contact, make_lead, make_target_list
from tests.fixtures.sending import make_contacts

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return token_client(make_marketer())


def members_of(target_list) -> set[tuple[str, int]]:
    return {
        (member.content_type.model, member.object_id)
        for member in TargetListMember.objects.filter(target_list=target_list)
    }


def test_add_by_address_takes_every_type_whose_primary_address_it_is(api):
    contact = make_contact("Ada@Example.com", others=["second@example.com"])
    lead = make_lead("ada@example.com")
    other = make_lead("bob@example.com")
    target_list = make_target_list()
    response = api.post(
        f"/api/target-lists/{target_list.pk}/members/",
        {"addresses": [" ADA@example.com", "second@example.com", "nobody@example.com"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "added": 2,
        # A secondary address is not how a record is reached by mass email.
        "addresses_not_found": ["second@example.com", "nobody@example.com"],
        "records_not_found": [],
    }
    assert members_of(target_list) == {("contact", contact.pk), ("lead", lead.pk)}
    assert ("lead", other.pk) not in members_of(target_list)


def test_add_by_address_limited_to_one_type_and_twice_adds_nothing_more(api):
    contact = make_contact("ada@example.com")
    make_lead("ada@example.com")
    target_list = make_target_list()
    url = f"/api/target-lists/{target_list.pk}/members/"
    body = {"addresses": ["ada@example.com"], "type": "contact"}
    assert api.post(url, body, format="json").json()["added"] == 1
    assert api.post(url, body, format="json").json()["added"] == 0
    assert members_of(target_list) == {("contact", contact.pk)}
    wrong = api.post(url, {"addresses": ["ada@example.com"], "type": "Planet"}, format="json")
    assert wrong.status_code == 400 and "type" in wrong.json()


def test_add_and_remove_by_record_reports_records_not_found(api):
    account, lead = make_account(), make_lead()
    target_list = make_target_list()
    url = f"/api/target-lists/{target_list.pk}/members/"
    records = [{"type": "Account", "id": account.pk}, {"type": "Lead", "id": lead.pk}]
    response = api.post(url, {"records": [*records, {"type": "Lead", "id": 99999}]}, format="json")
    assert response.json() == {
        "added": 2,
        "addresses_not_found": [],
        "records_not_found": [{"type": "Lead", "id": 99999}],
    }
    removed = api.post(f"{url}remove/", {"records": records[:1]}, format="json").json()
    assert removed["removed"] == 1
    assert members_of(target_list) == {("lead", lead.pk)}


def test_remove_by_address_keeps_the_others_and_their_opted_out_flags(api):
    gone, kept = make_contact("gone@example.com"), make_contact("kept@example.com")
    target_list = make_target_list(gone, kept)
    TargetListMember.objects.filter(object_id=kept.pk).update(opted_out=True)
    response = api.post(
        f"/api/target-lists/{target_list.pk}/members/remove/",
        {"addresses": ["GONE@example.com", "never@example.com"]},
        format="json",
    )
    assert response.json() == {
        "removed": 1,
        "addresses_not_found": ["never@example.com"],
        "records_not_found": [],
    }
    assert members_of(target_list) == {("contact", kept.pk)}
    assert TargetListMember.objects.get(object_id=kept.pk).opted_out


def test_members_are_listed_with_their_primary_address_by_pages(api):
    records = [make_contact(f"p{n}@example.com") for n in range(3)] + [make_lead(None)]
    target_list = make_target_list(*records)
    first = api.get(f"/api/target-lists/{target_list.pk}/members/?page_size=2").json()
    assert first["count"] == 4
    assert [(m["type"], m["email"]) for m in first["results"]] == [
        ("Contact", "p0@example.com"),
        ("Contact", "p1@example.com"),
    ]
    second = api.get(first["next"]).json()
    assert [(m["type"], m["id"], m["email"]) for m in second["results"]] == [
        ("Contact", records[2].pk, "p2@example.com"),
        ("Lead", records[3].pk, ""),
    ]
    listed = api.get(f"/api/target-lists/{target_list.pk}/").json()
    assert (listed["entry_count"], listed["opted_out_count"]) == (4, 0)


@pytest.mark.postgres
def test_ten_thousand_addresses_in_one_call(api, django_assert_max_num_queries):
    contacts = make_contacts(10_000)
    addresses = [f"contact-{contact.pk}@example.com" for contact in contacts]
    target_list = make_target_list()
    url = f"/api/target-lists/{target_list.pk}/members/"
    with django_assert_max_num_queries(12):  # set-based: not one query per address
        response = api.post(url, {"addresses": [*addresses, "x@example.com"]}, format="json")
    assert response.json()["added"] == 10_000
    assert response.json()["addresses_not_found"] == ["x@example.com"]
    content_type = ContentType.objects.get_for_model(Contact)
    assert (
        TargetListMember.objects.filter(target_list=target_list, content_type=content_type).count()
        == 10_000
    )
    removed = api.post(f"{url}remove/", {"addresses": addresses[:5000]}, format="json").json()
    assert removed["removed"] == 5000
    assert target_list.members.count() == 5000
    assert not Lead.objects.exists() and Contact.objects.count() == 10_000  # nothing created
