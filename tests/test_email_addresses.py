"""Addresses are shared rows: one per address, case-insensitively; flags apply to every record."""

import pytest
from django.db import IntegrityError

from targets.models import EmailAddress, RecordEmailAddress, primary_email_of
from tests.factories import make_contact, make_lead, make_user

pytestmark = pytest.mark.django_db


def test_address_is_stored_normalised_and_unique_case_insensitively():
    contact = make_contact(email="  Jane.Doe@Example.COM ")
    lead = make_lead(email="jane.doe@example.com")
    assert EmailAddress.objects.count() == 1
    assert contact.primary_email == lead.primary_email
    assert contact.email == "jane.doe@example.com"
    with pytest.raises(IntegrityError):
        EmailAddress.objects.create(address="JANE.DOE@example.com")


def test_opt_out_and_invalid_apply_to_every_record_sharing_the_address():
    contact = make_contact(email="shared@example.com")
    lead = make_lead(email="SHARED@example.com")
    contact.primary_email.__class__.objects.filter(address="shared@example.com").update(
        opt_out=True, invalid=True
    )
    assert lead.primary_email.opt_out and lead.primary_email.invalid
    assert not lead.primary_email.mailable


def test_record_has_several_addresses_and_one_primary():
    contact = make_contact(email="main@example.com", others=["second@example.com"])
    links = RecordEmailAddress.objects.filter(object_id=contact.pk)
    assert sorted((link.email_address.address, link.primary) for link in links) == [
        ("main@example.com", True),
        ("second@example.com", False),
    ]
    contact.set_email_addresses("second@example.com", ["main@example.com"])
    assert primary_email_of(contact).address == "second@example.com"
    assert RecordEmailAddress.objects.filter(object_id=contact.pk, primary=True).count() == 1


def test_a_users_email_field_is_their_primary_address():
    user = make_user(email="Staff@Example.com")
    assert primary_email_of(user).address == "staff@example.com"
    user.email = "new@example.com"
    user.save()
    assert primary_email_of(user).address == "new@example.com"
