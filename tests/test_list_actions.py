"""Add to / Remove from target list: admin actions over a filtered selection, set-based."""

import pytest
from django.contrib.admin import helpers
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from targets.membership import add_selection, remove_selection
from targets.models import Contact, Lead, TargetList, TargetListMember
from tests.factories import make_contact, make_lead, make_target_list, make_user

pytestmark = pytest.mark.django_db


def post_action(client, url: str, action: str, *, selected=(), select_across=False, **extra):
    data = {
        "action": action,
        "select_across": "1" if select_across else "0",
        helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in selected],
        **extra,
    }
    if "apply" not in extra:
        data["index"] = "0"  # submitted from the change list itself
    return client.post(url, data)


def member_ids(target_list, model) -> set[int]:
    return set(
        target_list.members.filter(
            content_type=ContentType.objects.get_for_model(model)
        ).values_list("object_id", flat=True)
    )


def test_action_shows_an_intermediate_page_to_choose_the_list(admin_client):
    contact = make_contact()
    make_target_list(name="Newsletter")
    response = post_action(
        admin_client, "/admin/targets/contact/", "add_to_target_list", selected=[contact.pk]
    )
    assert response.status_code == 200
    assert "admin/targets/choose_target_list.html" in [t.name for t in response.templates]
    assert b"Newsletter" in response.content
    assert b"1 contact selected" in response.content
    assert not TargetListMember.objects.exists()


def test_select_all_of_a_filtered_changelist_adds_every_match_and_nothing_else(admin_client):
    german = [make_contact(country="Germany") for _ in range(7)]
    make_contact(country="France")
    target_list = make_target_list()
    response = post_action(
        admin_client,
        "/admin/targets/contact/?country=Germany",
        "add_to_target_list",
        selected=[german[0].pk],  # only the checked row on the page ...
        select_across=True,  # ... but "select all 7" was clicked
        apply="1",
        target_list=target_list.pk,
    )
    assert response.status_code == 302
    assert member_ids(target_list, Contact) == {c.pk for c in german}


def test_intermediate_page_keeps_the_filter_and_select_across(admin_client):
    make_contact(country="Germany")
    contact = make_contact(country="Germany")
    response = post_action(
        admin_client,
        "/admin/targets/contact/?country=Germany",
        "add_to_target_list",
        selected=[contact.pk],
        select_across=True,
    )
    body = response.content.decode()
    assert '<form method="post">' in body  # posts back to the filtered URL
    assert 'name="select_across" value="1"' in body
    assert "2 contacts selected" in body


def test_a_new_list_can_be_created_by_name(admin_client):
    contacts = [make_contact() for _ in range(3)]
    post_action(
        admin_client,
        "/admin/targets/contact/",
        "add_to_target_list",
        selected=[c.pk for c in contacts[:2]],
        apply="1",
        new_list_name="Spring fair",
    )
    target_list = TargetList.objects.get(name="Spring fair")
    assert member_ids(target_list, Contact) == {contacts[0].pk, contacts[1].pk}


def test_choosing_nothing_or_both_is_an_error_and_writes_nothing(admin_client):
    contact = make_contact()
    target_list = make_target_list()
    for extra in ({}, {"target_list": target_list.pk, "new_list_name": "Other"}):
        response = post_action(
            admin_client,
            "/admin/targets/contact/",
            "add_to_target_list",
            selected=[contact.pk],
            apply="1",
            **extra,
        )
        assert response.status_code == 200
        assert b"errorlist" in response.content
    assert not TargetListMember.objects.exists()
    assert TargetList.objects.count() == 1


def test_members_already_in_the_list_keep_their_opted_out_flag(admin_client):
    kept, new = make_contact(), make_contact()
    target_list = make_target_list(kept)
    target_list.members.update(opted_out=True)
    post_action(
        admin_client,
        "/admin/targets/contact/",
        "add_to_target_list",
        selected=[kept.pk, new.pk],
        apply="1",
        target_list=target_list.pk,
    )
    flags = dict(target_list.members.values_list("object_id", "opted_out"))
    assert flags == {kept.pk: True, new.pk: False}


def test_remove_takes_out_only_the_selected_records_of_that_type(admin_client):
    first, second = make_contact(), make_contact()
    lead = make_lead()
    target_list = make_target_list(first, second, lead)
    lead_with_same_pk = Lead.objects.filter(pk=first.pk).exists()
    post_action(
        admin_client,
        "/admin/targets/contact/",
        "remove_from_target_list",
        selected=[first.pk],
        apply="1",
        target_list=target_list.pk,
    )
    assert member_ids(target_list, Contact) == {second.pk}
    assert member_ids(target_list, Lead) == {lead.pk}
    assert lead_with_same_pk is not None  # the type, not just the id, decides


def test_remove_page_offers_no_new_list(admin_client):
    contact = make_contact()
    response = post_action(
        admin_client, "/admin/targets/contact/", "remove_from_target_list", selected=[contact.pk]
    )
    assert b"new_list_name" not in response.content


@pytest.mark.parametrize(
    ("url", "factory"),
    [
        ("/admin/targets/lead/", make_lead),
        ("/admin/auth/user/", make_user),
    ],
)
def test_leads_and_users_have_the_actions(admin_client, url, factory):
    records = [factory() for _ in range(3)]
    target_list = make_target_list()
    response = admin_client.get(url)
    assert b"add_to_target_list" in response.content
    assert b"remove_from_target_list" in response.content
    post_action(
        admin_client,
        url,
        "add_to_target_list",
        selected=[r.pk for r in records[:2]],
        apply="1",
        target_list=target_list.pk,
    )
    assert member_ids(target_list, type(records[0])) == {r.pk for r in records[:2]}


def test_accounts_have_the_actions(admin_client):
    response = admin_client.get("/admin/targets/account/")
    assert b"add_to_target_list" in response.content


def test_adding_is_one_insert_select_whatever_the_selection_size():
    contacts = [make_contact(city="Bonn") for _ in range(25)]
    target_list = make_target_list()
    with CaptureQueriesContext(connection) as queries:
        added = add_selection(target_list, Contact.objects.filter(city="Bonn").order_by("-pk"))
    inserts = [q["sql"] for q in queries if "INSERT" in q["sql"]]
    assert added == 25
    assert len(inserts) == 1 and "SELECT" in inserts[0]
    assert member_ids(target_list, Contact) == {c.pk for c in contacts}
    assert add_selection(target_list, Contact.objects.filter(city="Bonn")) == 0  # no duplicates


def test_a_selection_with_joins_and_distinct_is_added_once():
    from targets.models import RecordEmailAddress

    contact = make_contact(others=["second@example.com"])
    target_list = make_target_list()
    linked = RecordEmailAddress.objects.filter(content_type__model="contact").values("object_id")
    queryset = Contact.objects.filter(pk__in=linked, email_address_links__isnull=False).distinct()
    assert add_selection(target_list, queryset) == 1
    assert remove_selection(target_list, queryset) == 1
    assert not member_ids(target_list, Contact) and contact.pk
