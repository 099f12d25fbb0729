"""Excluding lists at the query level: a record is excluded when it, or any record sharing
one of its addresses, is in an excluding list (the sending engine builds on this)."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from targets.exclusion import excluded_address_ids, is_excluded
from targets.models import EmailAddress, RecordEmailAddress
from tests.factories import make_account, make_contact, make_lead, make_target_list, make_user

pytestmark = pytest.mark.django_db


def excluded(list_ids) -> set[str]:
    ids = excluded_address_ids(list_ids)
    return set(EmailAddress.objects.filter(pk__in=ids).values_list("address", flat=True))


def excluded_records(list_ids) -> set[tuple[str, int]]:
    primary = RecordEmailAddress.objects.filter(primary=True)
    return {
        (link.content_type.model, link.object_id)
        for link in is_excluded(primary, list_ids).select_related("content_type")
    }


def test_member_of_an_excluding_list_excludes_all_its_addresses_for_every_record():
    blocked = make_contact(email="main@example.com", others=["alias@example.com"])
    same_primary = make_lead(email="MAIN@example.com")
    uses_the_alias = make_account(email="alias@example.com")
    alias_as_other = make_user(email="someone@example.com")
    alias_as_other.refresh_from_db()
    RecordEmailAddress.objects.create(
        content_type=ContentType.objects.get_for_model(alias_as_other),
        object_id=alias_as_other.pk,
        email_address=EmailAddress.objects.get(address="alias@example.com"),
    )
    bystander = make_contact(email="other@example.com")
    excluding = make_target_list(blocked)

    assert excluded([excluding.pk]) == {"main@example.com", "alias@example.com"}
    records = excluded_records([excluding.pk])
    assert ("contact", blocked.pk) in records
    assert ("lead", same_primary.pk) in records
    assert ("account", uses_the_alias.pk) in records
    assert ("user", alias_as_other.pk) not in records  # its primary address is not shared
    assert ("contact", bystander.pk) not in records


def test_membership_in_a_non_excluding_list_or_no_list_excludes_nothing():
    contact = make_contact()
    other_list = make_target_list(contact)
    excluding = make_target_list()
    assert excluded([excluding.pk]) == set()
    assert excluded([]) == set()
    assert other_list.pk


def test_opted_out_members_of_an_excluding_list_still_exclude():
    contact = make_contact(email="out@example.com")
    excluding = make_target_list(contact)
    excluding.members.update(opted_out=True)
    assert excluded([excluding.pk]) == {"out@example.com"}


def test_several_excluding_lists_and_same_id_of_another_type():
    contact = make_contact(email="c@example.com")
    lead = make_lead(email="l@example.com")
    first, second = make_target_list(contact), make_target_list(lead)
    assert excluded([first.pk, second.pk]) == {"c@example.com", "l@example.com"}
    # A member is a (type, id) pair: an account with the contact's id is not excluded.
    make_account(email="a@example.com", pk=contact.pk)
    assert excluded([first.pk]) == {"c@example.com"}


def test_exclusion_is_one_statement():
    contacts = [make_contact() for _ in range(5)]
    excluding = make_target_list(*contacts)
    with CaptureQueriesContext(connection) as queries:
        found = list(is_excluded(RecordEmailAddress.objects.all(), [excluding.pk]))
    assert len(queries) == 1 and len(found) == 5
