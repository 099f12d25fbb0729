"""Target types come from settings: built-in ones in queue order, then custom models."""

import pytest

from targets.registry import COMPANY, PERSON, target_type_by_key, target_type_for, target_types
from tests.factories import make_target_list
from tests.testapp.models import Partner, Volunteer

pytestmark = pytest.mark.django_db


def test_built_in_types_come_first_in_queue_order_then_custom_types():
    assert [t.key for t in target_types()] == [
        "Account",
        "Contact",
        "Lead",
        "User",
        "Partner",
        "Volunteer",
    ]
    assert [t.order for t in target_types()] == sorted(t.order for t in target_types())


def test_custom_models_are_usable_like_built_in_ones():
    partner = Partner.objects.create(name="Partner Org")
    partner.set_email_addresses("Partners@Example.org")
    volunteer = Volunteer.objects.create(first_name="Val", last_name="Unteer")
    volunteer.set_email_addresses("val@example.org")
    target_list = make_target_list(partner, volunteer)
    assert target_list.entry_count() == 2
    assert partner.email == "partners@example.org"
    assert target_type_for(Partner).kind == COMPANY
    assert target_type_for(Volunteer).kind == PERSON
    assert target_type_by_key("volunteer").model is Volunteer
