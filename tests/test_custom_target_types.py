"""Custom target types (tests/testapp: Partner, Volunteer) get every list tool."""

from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType

from targets import importing
from targets.admin import TargetListActionsMixin, register_target_admin
from targets.export import member_rows
from targets.models import Segment, SegmentCondition, TargetList
from targets.registry import target_type_by_key
from targets.segments import sync_segment
from tests.testapp.models import Partner, Volunteer

pytestmark = pytest.mark.django_db


def make_partner(name: str, region: str = "", email: str | None = None) -> Partner:
    partner = Partner.objects.create(name=name, region=region)
    partner.set_email_addresses(email or f"{name.lower().replace(' ', '-')}@partner.example")
    return partner


def test_register_target_admin_gives_the_list_actions(admin_client):
    assert isinstance(admin.site._registry[Partner], TargetListActionsMixin)
    partners = [make_partner(f"P{n}", region="North") for n in range(3)]
    make_partner("South1", region="South")
    target_list = TargetList.objects.create(name="Partners")
    page = admin_client.get("/admin/testapp/partner/")
    assert b"add_to_target_list" in page.content and b"p0@partner.example" in page.content
    admin_client.post(
        "/admin/testapp/partner/?q=P",
        {
            "action": "add_to_target_list",
            "select_across": "1",
            "_selected_action": [partners[0].pk],
            "apply": "1",
            "target_list": target_list.pk,
        },
    )
    assert set(target_list.members.values_list("object_id", flat=True)) == {p.pk for p in partners}


def test_register_target_admin_adds_the_mixin_to_a_plain_base():
    site = admin.AdminSite(name="custom")
    admin_class = register_target_admin(
        Volunteer, base=admin.ModelAdmin, site=site, list_display=["last_name"]
    )
    assert issubclass(admin_class, TargetListActionsMixin)
    assert admin_class.list_display == ["last_name"]
    assert "add_to_target_list" in site._registry[Volunteer].get_actions(_request())


def _request():
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = type("Super", (AnonymousUser,), {"has_perm": lambda *a: True})()
    return request


def test_csv_import_of_a_custom_person_type(tmp_path: Path):
    path = tmp_path / "volunteers.csv"
    path.write_text("email,first name,last name\nv1@example.com,Val,One\nv2@example.com,,\n")
    target_type = target_type_by_key("volunteer")
    csv_file = importing.open_csv(path)
    mapping = importing.default_mapping(csv_file.headers, importing.importable_fields(target_type))
    assert mapping == {"email": "email", "first_name": "first name", "last_name": "last name"}
    target_list = TargetList.objects.create(name="Helpers")
    run = importing.resumable_run(csv_file, target_type, target_list, mapping)
    report = importing.run_import(run, csv_file, target_type)
    assert report.created == 1 and str(report.errors[0]) == "line 3: Last name is missing"
    volunteer = Volunteer.objects.get()
    assert volunteer.email == "v1@example.com"
    assert list(member_rows(target_list)) == [["v1@example.com", "Val One", "Volunteer", "no"]]


def test_segment_over_a_custom_company_type():
    north = make_partner("Nordwind", region="North")
    make_partner("Sud", region="South")
    target_list = TargetList.objects.create(name="North partners")
    segment = Segment.objects.create(
        name="North",
        target_type=ContentType.objects.get_for_model(Partner),
        target_list=target_list,
    )
    SegmentCondition.objects.create(
        segment=segment, field="region", operator="equals", value="north"
    )
    assert sync_segment(segment).added == 1
    assert list(target_list.members.values_list("object_id", flat=True)) == [north.pk]


def test_member_page_names_custom_records(admin_client):
    target_list = TargetList.objects.create(name="Mixed")
    target_list.add(make_partner("Acme Partner"))
    body = admin_client.get(
        f"/admin/targets/targetlistmember/?target_list__id__exact={target_list.pk}"
    ).content.decode()
    assert "Acme Partner" in body and "acme-partner@partner.example" in body
    assert '<td class="field-record_type">Partner</td>' in body
