"""Send Test: the real message to chosen people now, marked test, whatever the status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from massmail.models import MassEmail, QueueItem
from massmail.send_test import send_test
from targets.models import EmailAddress
from tests.factories import make_campaign, make_contact, make_lead, make_mass_email, make_user

pytestmark = pytest.mark.django_db


def test_sends_at_once_whatever_the_schedule(smtp_settings, smtp_sink, outbound_unlimited):
    mass_email = make_mass_email(
        make_campaign(), status=MassEmail.Status.DRAFT, start_at=timezone.now() + timedelta(days=9)
    )
    contact = make_contact("contact@example.com", first_name="Ada")
    result = send_test(mass_email, records=[contact], addresses=["Typed@Example.com"])
    assert sorted(result.sent) == ["contact@example.com", "typed@example.com"]
    assert sorted(smtp_sink.recipients()) == ["contact@example.com", "typed@example.com"]
    items = QueueItem.objects.filter(mass_email=mass_email)
    assert {(item.is_test, item.status) for item in items} == {(True, QueueItem.Status.SENT)}
    logs = CampaignLogRecord.objects.filter(mass_email=mass_email)
    assert logs.count() == 2 and all(log.is_test for log in logs)
    by_address = {r.rcpt_tos[0]: r.message() for r in smtp_sink.received}
    assert by_address["contact@example.com"]["Subject"] == "Hello Ada"
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.DRAFT  # a test changes nothing else


def test_skips_opted_out_invalid_and_addressless_recipients(smtp_settings, smtp_sink):
    mass_email = make_mass_email()
    out = make_contact("out@example.com")
    bad = make_lead("bad@example.com")
    EmailAddress.objects.filter(address="out@example.com").update(opt_out=True)
    EmailAddress.objects.filter(address="bad@example.com").update(invalid=True)
    nobody = make_contact(None)
    result = send_test(mass_email, records=[out, bad, nobody], addresses=["ok@example.com"])
    assert result.sent == ["ok@example.com"]
    assert [why for _, why in result.skipped] == [
        "out@example.com opted out",
        "bad@example.com is invalid",
        "no primary email address",
    ]
    assert smtp_sink.recipients() == ["ok@example.com"]


def test_a_failed_test_says_why(smtp_settings, smtp_sink):
    result = send_test(make_mass_email(), addresses=["nouser@example.com"])
    assert result.sent == []
    [(address, why)] = result.failed
    assert address == "nouser@example.com" and "5.1.1" in why


def test_the_admin_page_defaults_to_the_current_user(client, smtp_settings, smtp_sink):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    mass_email = make_mass_email()
    response = client.post(
        reverse("admin:massmail_massemail_changelist"),
        {"action": "send_test_action", "_selected_action": [mass_email.pk]},
    )
    url = reverse("admin:massmail_massemail_send_test", args=[mass_email.pk])
    assert response["Location"] == url
    page = client.get(url).content.decode()
    assert f'<option value="{admin.pk}" selected>boss</option>' in page
    assert 'class="admin-autocomplete"' in page
    lead = make_lead("lead@example.com")
    other = make_user("other@example.com")
    response = client.post(
        url,
        {
            "users": [admin.pk, other.pk],
            "leads": [lead.pk],
            "addresses": "typed@example.com\n\n",
        },
        follow=True,
    )
    assert sorted(smtp_sink.recipients()) == [
        "boss@example.com",
        "lead@example.com",
        "other@example.com",
        "typed@example.com",
    ]
    assert "Test sent to" in response.content.decode()


def test_the_admin_page_rejects_bad_input_and_sends_nothing(client, smtp_settings, smtp_sink):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    url = reverse("admin:massmail_massemail_send_test", args=[make_mass_email().pk])
    response = client.post(url, {"users": "999999", "addresses": "not an address"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice. 999999 is not one of the available choices." in page
    assert "is not a valid email address" in page
    assert smtp_sink.received == []


def test_send_test_pickers_search_with_the_admins_autocomplete(client):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    lead = make_lead("grace@navy.example", first_name="Grace", last_name="Hopper")
    make_lead("alan@example.org", first_name="Alan", last_name="Turing")
    url = reverse("admin:massmail_massemail_send_test_autocomplete")
    found = client.get(url, {"term": "hop", "field_name": "leads"}).json()
    assert [result["id"] for result in found["results"]] == [str(lead.pk)]
    users = client.get(url, {"term": "boss", "field_name": "users"}).json()
    assert [result["text"] for result in users["results"]] == ["boss"]
    assert client.get(url, {"term": "x", "field_name": "groups"}).status_code == 403
