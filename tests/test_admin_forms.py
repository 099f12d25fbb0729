"""What a marketer sees when the admin forms get bad input: a clear message, nothing saved."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bounces.models import GroupEmailAccount
from campaigns.models import Campaign
from massmail.models import MassEmail
from targets.models import Contact, EmailAddress
from tests.factories import make_campaign, make_contact, make_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(admin_client):
    return admin_client


def errors_of(response) -> dict:
    assert response.status_code == 200, "a rejected form is shown again, not redirected"
    return response.context["adminform"].form.errors


def test_contact_with_an_invalid_address_is_not_saved(client):
    response = client.post(
        "/admin/targets/contact/add/",
        {"first_name": "Ann", "last_name": "Example", "email": "ann@@example"},
    )
    assert "is not a valid email address" in errors_of(response)["email"][0]
    assert not Contact.objects.exists()
    assert not EmailAddress.objects.filter(address__startswith="ann").exists()


def test_contact_addresses_are_saved_normalised_and_shared(client):
    response = client.post(
        "/admin/targets/contact/add/",
        {
            "first_name": "Ann",
            "last_name": "Example",
            "email": "Ann@Example.com",
            "other_emails": "ann.private@example.org\n",
        },
    )
    assert response.status_code == 302
    contact = Contact.objects.get()
    assert contact.email == "ann@example.com"
    assert EmailAddress.objects.filter(address="ann.private@example.org").exists()
    # The list page shows the address and finds the record by it.
    page = client.get("/admin/targets/contact/?q=ann@example")
    assert b"ann@example.com" in page.content and b"Example" in page.content


def test_campaign_ending_before_it_starts_is_rejected(client):
    response = client.post(
        "/admin/campaigns/campaign/add/",
        {
            "name": "Backwards",
            "type": "email",
            "status": "planning",
            "start_date": "2026-06-02",
            "end_date": "2026-06-01",
            "mass_emails-TOTAL_FORMS": "0",
            "mass_emails-INITIAL_FORMS": "0",
            "tracking_urls-TOTAL_FORMS": "0",
            "tracking_urls-INITIAL_FORMS": "0",
        },
    )
    assert errors_of(response)["end_date"] == ["The end date cannot be before the start date."]
    assert not Campaign.objects.exists()


def mass_email_form(campaign, **overrides) -> dict:
    start = timezone.localtime() + timedelta(hours=1)
    return {
        "campaign": campaign.pk,
        "name": "Launch",
        "status": "pending",
        "start_at_0": start.strftime("%Y-%m-%d"),
        "start_at_1": start.strftime("%H:%M:%S"),
        "email_template": make_template().pk,
        "from_address": "news@example.com",
        **overrides,
    }


def test_mass_email_on_a_web_campaign_is_rejected(client):
    campaign = make_campaign(type=Campaign.Type.WEB)
    response = client.post("/admin/massmail/massemail/add/", mass_email_form(campaign))
    assert errors_of(response)["campaign"] == [
        "Mass emails are only for Email, Newsletter and Informational Email campaigns."
    ]
    assert not MassEmail.objects.exists()


def test_from_address_that_is_not_an_address_is_rejected(client):
    campaign = make_campaign()
    response = client.post(
        "/admin/massmail/massemail/add/", mass_email_form(campaign, from_address="news at example")
    )
    assert errors_of(response)["from_address"] == ["Enter a valid email address."]
    assert not MassEmail.objects.exists()


def test_mass_email_target_lists_default_to_the_campaigns(client):
    contact = make_contact()
    from tests.factories import make_target_list

    included, excluded = make_target_list(contact), make_target_list()
    campaign = make_campaign(target_lists=[included], excluding=[excluded])
    response = client.post("/admin/massmail/massemail/add/", mass_email_form(campaign))
    assert response.status_code == 302, response.content[:2000]
    mass_email = MassEmail.objects.get()
    assert list(mass_email.target_lists.all()) == [included]
    assert list(mass_email.excluding_target_lists.all()) == [excluded]


def test_group_account_password_is_never_shown_back_and_kept_when_left_empty(client):
    account = GroupEmailAccount.objects.create(
        name="Bounces",
        email_address="bounces@example.com",
        imap_host="imap.example.com",
        imap_username="bounces",
        imap_password="s3cret-imap",
    )
    page = client.get(f"/admin/bounces/groupemailaccount/{account.pk}/change/")
    assert b"s3cret-imap" not in page.content
    data = {
        "name": "Bounces",
        "email_address": "bounces@example.com",
        "active": "on",
        "handles_bounces": "on",
        "imap_host": "imap.example.com",
        "imap_port": "993",
        "imap_security": "tls",
        "imap_username": "bounces",
        "imap_password": "",
        "imap_folder": "INBOX",
        "after_processing": "seen",
        "smtp_port": "587",
        "smtp_security": "starttls",
    }
    response = client.post(f"/admin/bounces/groupemailaccount/{account.pk}/change/", data)
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.imap_password == "s3cret-imap"
