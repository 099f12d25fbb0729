"""A target list's page: members by type with names, addresses and flags; opt-out actions;
Duplicate."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from targets.models import Contact, Lead, TargetList
from tests.factories import make_account, make_contact, make_lead, make_target_list

pytestmark = pytest.mark.django_db

MEMBERS = "/admin/targets/targetlistmember/"


def test_change_page_counts_members_by_type_with_links(admin_client):
    contacts = [make_contact() for _ in range(3)]
    target_list = make_target_list(*contacts, make_lead(), make_account())
    target_list.members.filter(object_id=contacts[0].pk, content_type__model="contact").update(
        opted_out=True
    )
    page = admin_client.get(f"/admin/targets/targetlist/{target_list.pk}/change/")
    body = page.content.decode()
    contact_type = ContentType.objects.get_for_model(Contact).pk
    assert f"?target_list__id__exact={target_list.pk}&amp;type={contact_type}" in body
    assert "<td>3</td><td>1</td>" in body.replace("\n", "")  # contacts: 3, one opted out
    assert "Export CSV" in body and "Import CSV" in body
    assert 'name="action" value="duplicate"' in body
    assert f'name="_selected_action" value="{target_list.pk}"' in body


def test_member_list_shows_names_addresses_and_filters_by_type(admin_client):
    ada = make_contact(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    lead = make_lead(email="lead@example.com", first_name="Lee", last_name="Lead")
    target_list = make_target_list(ada, lead)
    make_target_list(make_contact(first_name="Other", last_name="List"))
    lead_type = ContentType.objects.get_for_model(Lead).pk

    body = admin_client.get(f"{MEMBERS}?target_list__id__exact={target_list.pk}").content.decode()
    assert "Ada Lovelace" in body and "ada@example.com" in body and "Lee Lead" in body
    assert "Other List" not in body
    only_leads = admin_client.get(
        f"{MEMBERS}?target_list__id__exact={target_list.pk}&type={lead_type}"
    ).content.decode()
    assert "Lee Lead" in only_leads and "Ada Lovelace" not in only_leads


def test_member_page_reads_only_the_shown_page(admin_client):
    target_list = make_target_list(*[make_contact() for _ in range(120)])
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"{MEMBERS}?target_list__id__exact={target_list.pk}")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100  # one page
    contact_reads = [q["sql"] for q in queries if 'FROM "targets_contact"' in q["sql"]]
    assert len(contact_reads) == 1 and "LIMIT" not in contact_reads[0]  # pk IN (the page)
    member_reads = [q["sql"] for q in queries if 'FROM "targets_targetlistmember"' in q["sql"]]
    paged = [sql for sql in member_reads if "LIMIT 100" in sql]
    assert paged and "targets_recordemailaddress" not in paged[0]  # addresses: after paging
    address_reads = [q["sql"] for q in queries if 'FROM "targets_recordemailaddress"' in q["sql"]]
    assert len(address_reads) == 1


def test_mark_and_unmark_opted_out(admin_client):
    first, second = make_contact(), make_contact()
    target_list = make_target_list(first, second)
    member = target_list.members.get(object_id=first.pk)
    admin_client.post(
        MEMBERS, {"action": "mark_opted_out", "_selected_action": [member.pk], "index": "0"}
    )
    assert dict(target_list.members.values_list("object_id", "opted_out")) == {
        first.pk: True,
        second.pk: False,
    }
    admin_client.post(
        MEMBERS, {"action": "unmark_opted_out", "_selected_action": [member.pk], "index": "0"}
    )
    assert not target_list.members.filter(opted_out=True).exists()
    assert first.primary_email.opt_out is False  # the list flag, not the address


def test_duplicate_copies_members_not_opted_out(admin_client):
    kept, out = make_contact(), make_contact()
    target_list = make_target_list(kept, out, name="Customers")
    target_list.members.filter(object_id=out.pk).update(opted_out=True)
    for _ in range(2):
        admin_client.post(
            "/admin/targets/targetlist/",
            {"action": "duplicate", "_selected_action": [target_list.pk], "index": "0"},
        )
    copy = TargetList.objects.get(name="Customers (copy)")
    assert list(copy.members.values_list("object_id", "opted_out")) == [(kept.pk, False)]
    assert TargetList.objects.filter(name="Customers (copy) 2").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/admin/targets/targetlist/", "Import CSV"),
        ("/admin/targets/targetlist/add/", "Name"),
        ("/admin/targets/targetlist/import/", "Step 1 of 3"),
        ("/admin/targets/segment/add/", "Save to see how many records match."),
        ("/admin/targets/importrun/", "import run"),
        ("/admin/targets/targetlistmember/", "type"),
    ],
)
def test_list_tool_pages_render(admin_client, url, expected):
    make_target_list(make_contact())
    response = admin_client.get(url)
    assert response.status_code == 200
    assert expected in response.content.decode()
