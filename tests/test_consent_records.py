"""Consent records: written for every step, shown on the address's page, exported on request."""

import csv
import io
import json

import pytest
from django.core import mail
from django.test import Client

from subscriptions.models import ConsentRecord
from targets.models import EmailAddress
from tests.factories import make_campaign, make_contact, make_mass_email, make_target_list
from tests.fixtures.tracking import make_sent_item
from tests.subscription_factories import confirm_path, make_form, post_form
from tracking import links

pytestmark = pytest.mark.django_db


def _subscribed(client) -> EmailAddress:
    form = make_form(consent_text="Weekly news, unsubscribe any time.")
    post_form(client, form, email="ann@example.com", ip="203.0.113.77")
    client.post(confirm_path(mail.outbox[-1].alternatives[0][0]), REMOTE_ADDR="203.0.113.78")
    return EmailAddress.objects.get(address="ann@example.com")


def test_opting_out_and_back_in_on_the_unsubscribe_page_is_recorded(client):
    contact = make_contact(email="ann@example.com")
    target_list = make_target_list(contact)
    item = make_sent_item(make_mass_email(make_campaign([target_list])), contact)
    page = links.unsubscribe_url("", item.uid)
    client.post(page, {"action": "unsubscribe"}, HTTP_USER_AGENT="Firefox", REMOTE_ADDR="192.0.2.9")
    client.post(page, {"action": "unsubscribe"})  # repeated: nothing changes, no record
    client.post(page, {"action": "subscribe"}, HTTP_USER_AGENT="Firefox")
    records = list(ConsentRecord.objects.filter(address="ann@example.com"))
    assert [r.action for r in records] == ["opt_out", "re_subscription"]
    assert records[0].target_lists == target_list.name and records[0].ip == "192.0.2.0"
    assert records[0].user_agent == "Firefox"


def test_one_click_unsubscribe_is_recorded_once():
    contact = make_contact(email="ann@example.com")
    mass_email = make_mass_email(make_campaign([make_target_list(contact)]), opt_out_entirely=True)
    item = make_sent_item(mass_email, contact)
    one_click = Client(enforce_csrf_checks=True)
    for _ in range(2):
        response = one_click.post(
            links.unsubscribe_url("", item.uid), {"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code == 200
    (record,) = ConsentRecord.objects.all()
    assert record.action == "opt_out" and record.text == "Unsubscribed from all marketing email."


def test_the_address_page_shows_the_records(client, admin_client):
    email = _subscribed(client)
    page = admin_client.get(f"/admin/targets/emailaddress/{email.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="consent"' in html
    assert "Sign-up" in html and "Confirmation" in html
    assert "Weekly news, unsubscribe any time." in html and "203.0.113.0" in html


def test_the_person_gets_their_data_as_json_and_csv(client, admin_client):
    email = _subscribed(client)
    data = json.loads(
        admin_client.get(f"/admin/targets/emailaddress/{email.pk}/personal-data.json").content
    )
    assert data["address"] == "ann@example.com" and data["opted_out"] is False
    assert [(r["type"], r["first_name"]) for r in data["records"]] == [("Lead", "Ann")]
    assert [entry["action"] for entry in data["consent"]] == ["sign_up", "confirmation"]
    assert data["sign_ups"][0]["status"] == "confirmed" and len(data["lists"]) == 1

    response = admin_client.get(f"/admin/targets/emailaddress/{email.pk}/consent.csv")
    assert response["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["action"] for row in rows] == ["sign_up", "confirmation"]
    assert (
        rows[1]["ip"] == "203.0.113.0" and rows[1]["text"] == "Weekly news, unsubscribe any time."
    )


def test_exports_are_for_staff_only(client):
    email = _subscribed(client)
    response = Client().get(f"/admin/targets/emailaddress/{email.pk}/personal-data.json")
    assert response.status_code == 302 and "/login/" in response["Location"]
