"""A contact's, lead's or account's admin page: found by address, its address status and mail."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from bounces.models import BounceEvent
from campaigns.models import CampaignLogRecord
from targets.models import EmailAddress
from tests.factories import (
    make_account,
    make_contact,
    make_lead,
    make_mass_email,
    make_tracking_url,
)
from tests.log_factories import log, make_queue_item

pytestmark = pytest.mark.django_db


def _found(admin_client, model: str, term: str) -> list[str]:
    response = admin_client.get(f"/admin/targets/{model}/", {"q": term})
    return [str(row) for row in response.context["cl"].result_list]


def test_contacts_are_found_by_whole_address_prefix_and_domain(admin_client):
    make_contact(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    make_contact(
        email="grace@navy.example", others=["g@example.com"], first_name="Grace", last_name="Hopper"
    )
    make_contact(email="alan@bletchley.example", first_name="Alan", last_name="Turing")
    assert _found(admin_client, "contact", "ada@example.com") == ["Ada Lovelace"]
    assert _found(admin_client, "contact", "ADA@") == ["Ada Lovelace"]
    assert _found(admin_client, "contact", "al") == ["Alan Turing"]
    assert sorted(_found(admin_client, "contact", "@example.com")) == [
        "Ada Lovelace",
        "Grace Hopper",  # through its other address
    ]
    assert _found(admin_client, "contact", "Hopper") == ["Grace Hopper"]
    assert _found(admin_client, "contact", "@nowhere.example") == []


def test_leads_accounts_and_addresses_are_found_by_domain_too(admin_client):
    make_lead(email="lee@firm.example", first_name="Lee", last_name="Lead")
    make_account(email="info@firm.example", name="Firm")
    make_account(email="info@other.example", name="Other")
    assert _found(admin_client, "lead", "@firm.example") == ["Lee Lead"]
    assert _found(admin_client, "account", "@firm.example") == ["Firm"]
    assert sorted(_found(admin_client, "emailaddress", "@firm.example")) == [
        "info@firm.example",
        "lee@firm.example",
    ]


def test_the_page_shows_address_status_and_campaign_history(admin_client):
    contact = make_contact(email="ada@example.com", others=["old@example.com"])
    EmailAddress.objects.filter(address="ada@example.com").update(opt_out=True)
    EmailAddress.objects.filter(address="old@example.com").update(invalid=True)
    old = EmailAddress.objects.get(address="old@example.com")
    for n, verdict in enumerate(["hard", "soft", "soft"]):
        BounceEvent.objects.create(
            source="imap",
            event_key=f"k{n}",
            address=old.address,
            email_address=old,
            verdict=verdict,
        )
    mass_email = make_mass_email(name="Spring news")
    item = make_queue_item(mass_email, contact)
    url = make_tracking_url(mass_email.campaign, name="Offer", url="https://example.org/offer")
    log(item, "sent")
    log(item, "clicked", tracking_url=url)
    other = make_contact()
    log(make_queue_item(mass_email, other), "opted_out")

    page = admin_client.get(f"/admin/targets/contact/{contact.pk}/change/").content.decode()
    status = page[page.index('class="address-status"') :]
    assert "<td>ada@example.com (primary)</td><td>opted out</td><td>no</td><td>none</td>" in status
    assert "<td>old@example.com</td><td>no</td><td>invalid</td><td>1 hard bounce, 2 soft" in status
    history = page[page.index('class="campaign-history"') :]
    assert history.count("<tr>") == 3  # the header and this contact's two entries only
    assert "Spring news" in history and "Clicked" in history and "Sent" in history
    assert "Offer: https://example.org/offer" in history
    assert f"/admin/campaigns/campaign/{mass_email.campaign_id}/change/" in history
    assert "Opted out" not in history


def test_a_record_never_mailed_says_so(admin_client):
    lead = make_lead()
    page = admin_client.get(f"/admin/targets/lead/{lead.pk}/change/").content.decode()
    assert "No campaign has mailed this record yet." in page


@pytest.mark.postgres
def test_the_history_reads_the_log_through_an_index():
    contact = make_contact()
    content_type = ContentType.objects.get_for_model(contact)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a small table: no shortcut
    query = CampaignLogRecord.objects.filter(
        content_type=content_type, object_id=contact.pk
    ).order_by("-action_date", "-id")[:50]
    plan = query.explain()
    assert "log_by_target" in plan, plan
