"""Target lists hold members of every type, each membership with its own opted-out flag."""

import pytest
from django.contrib.contenttypes.models import ContentType

from targets.models import TargetList, TargetListMember
from tests.factories import make_account, make_contact, make_lead, make_target_list, make_user

pytestmark = pytest.mark.django_db


def test_members_of_every_type_with_counts():
    contact, lead, account, user = make_contact(), make_lead(), make_account(), make_user()
    target_list = make_target_list(contact, lead, account, user)
    target_list.add(contact)  # adding twice keeps one membership
    TargetListMember.objects.filter(
        target_list=target_list, content_type=ContentType.objects.get_for_model(lead)
    ).update(opted_out=True)
    assert target_list.entry_count() == 4
    assert target_list.opted_out_count() == 1
    annotated = TargetList.objects.with_counts().get(pk=target_list.pk)
    assert (annotated.entry_count, annotated.opted_out_count) == (4, 1)


def test_opting_out_of_one_list_leaves_the_other_list_and_the_address_alone():
    contact = make_contact()
    first, second = make_target_list(contact), make_target_list(contact)
    first.members.update(opted_out=True)
    assert second.members.get().opted_out is False
    assert contact.primary_email.opt_out is False


def test_duplicate_copies_only_members_not_opted_out():
    kept, dropped = make_contact(), make_lead()
    original = make_target_list(kept, dropped)
    original.members.filter(
        content_type=ContentType.objects.get_for_model(dropped), object_id=dropped.pk
    ).update(opted_out=True)
    copy = original.duplicate("Copy")
    assert [(m.content_type.model, m.object_id, m.opted_out) for m in copy.members.all()] == [
        ("contact", kept.pk, False)
    ]
