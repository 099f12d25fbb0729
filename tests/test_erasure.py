"""Erasing a person leaves no personal data of theirs in any table, only a suppression hash:
not in the webhook outbox (delivered or pending events) nor in held bounce reports either."""

import pytest
from django.core import mail
from django.db import connection

from bounces.models import BounceEvent, HeldReport
from campaigns.models import CampaignLogRecord
from massmail.models import QueueItem
from massmail.sending import tick
from subscriptions.consent import erase
from targets.models import EmailAddress, Lead, Suppression, address_hash
from tests.factories import make_campaign, make_contact, make_mass_email
from tests.fixtures.sending import set_outbound
from tests.subscription_factories import confirm_path, make_form, post_form
from tests.test_csv_import import do_import
from tracking import links
from webhooks.delivery import deliver_due
from webhooks.models import EventType, WebhookEndpoint, WebhookEvent

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db]

AGENT = "Mozilla/5.0 (Zwickyphone; Annabel's own build 4.2)"
ANN = {"email": "Annabel.Zwicky@example.org", "first_name": "Annabel", "last_name": "Zwickyquux"}
TRACES = ["annabel.zwicky@example.org", "Annabel", "Zwickyquux", "Zwickyphone", "Quuxville"]


def text_columns_containing(needle: str) -> list[str]:
    """Every text-like column of every table in the schema that holds the needle."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
            " AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'inet')"
            " AND table_name IN (SELECT table_name FROM information_schema.tables"
            "   WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')"
        )
        columns = cursor.fetchall()
        found = []
        for table, column in columns:
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE %s', [f"%{needle}%"]
            )
            if cursor.fetchone()[0]:
                found.append(f"{table}.{column}")
        return found


def _ann_everywhere(client, admin_client, smtp_sink, webhook_receiver) -> EmailAddress:
    """Ann signs up, confirms, gets a mass email, opens it, bounces once, is edited in the admin;
    a webhook endpoint takes every event type, and some of hers are delivered."""
    WebhookEndpoint.objects.create(
        name="CRM", url=webhook_receiver.url, event_types=EventType.values
    )
    form = make_form(extra_fields=["city"])
    post_form(client, form, ip="203.0.113.5", city="Quuxville", **ANN, HTTP_USER_AGENT=AGENT)
    confirmation = smtp_sink.received[-1].message().get_body(preferencelist=("html",))
    client.post(confirm_path(confirmation.get_content()), HTTP_USER_AGENT=AGENT)
    lead = Lead.objects.get()
    target_list = form.target_lists.get()
    mass_email = make_mass_email(make_campaign([target_list]))
    assert tick().sent == 1 and len(smtp_sink.received) == 2
    item = QueueItem.objects.get(mass_email=mass_email)
    assert deliver_due().delivered == 3  # subscribed, sent, mass email finished
    client.get(links.open_pixel_url("", item.uid), HTTP_USER_AGENT=AGENT, REMOTE_ADDR="203.0.113.5")
    BounceEvent.objects.create(
        source="smtp",
        address=ANN["email"],
        email_address=item.email_address,
        queue_item=item,
        verdict=BounceEvent.Verdict.SOFT,
        diagnostic=f"452 4.2.2 <{ANN['email']}> mailbox full",
    )
    HeldReport.objects.create(
        source="imap",
        address=ANN["email"],
        email_address=item.email_address,
        verdict=BounceEvent.Verdict.HARD,
        diagnostic=f"550 5.1.1 <{ANN['email']}> user unknown",
    )
    admin_client.post(
        f"/admin/targets/lead/{lead.pk}/change/",
        {
            "first_name": "Annabel",
            "last_name": "Zwickyquux",
            "city": "Quuxville",
            "status": "new",
            "email": ANN["email"],
            "other_emails": "",
        },
    )
    assert Lead.objects.get().email == ANN["email"].lower(), "the admin edit kept her address"
    # An open log entry and a hit with her user agent exist now.
    assert CampaignLogRecord.objects.filter(action="opened").exists()
    hers = WebhookEvent.objects.filter(email_address=ANN["email"].lower())
    assert {e.event_type for e in hers.filter(delivered_at__isnull=False)} == {"subscribed", "sent"}
    assert hers.filter(delivered_at__isnull=True, event_type="opened").exists()
    for trace in TRACES:
        assert text_columns_containing(trace), f"the scenario should leave {trace!r} somewhere"
    return item.email_address


def test_erasure_leaves_nothing_but_a_hash(
    client, admin_client, smtp_settings, smtp_sink, webhook_receiver
):
    set_outbound(max_per_hour=100, open_tracking=True)
    other = make_contact(email="bob@example.org", first_name="Robert", last_name="Keepme")
    email = _ann_everywhere(client, admin_client, smtp_sink, webhook_receiver)

    page = admin_client.get(f"/admin/targets/emailaddress/{email.pk}/erase/")
    assert "Erase for good" in page.content.decode()
    response = admin_client.post(f"/admin/targets/emailaddress/{email.pk}/erase/")
    assert response.status_code == 302

    for trace in TRACES:
        assert text_columns_containing(trace) == [], f"{trace!r} is left"
    assert Suppression.objects.filter(address_hash=address_hash(ANN["email"])).exists()
    other.refresh_from_db()
    assert other.email == "bob@example.org" and text_columns_containing("Keepme")
    assert WebhookEvent.objects.filter(event_type="mass_email_finished").exists(), "not hers"


def test_an_erased_address_comes_back_opted_out_until_the_person_confirms(client, tmp_path):
    form = make_form()
    erase("ann@example.com")
    assert EmailAddress.objects.for_address("Ann@Example.com").opt_out, "admin or code path"

    EmailAddress.objects.all().delete()
    path = tmp_path / "people.csv"
    path.write_text("Email,Last name\nann@example.com,Imported\n")
    do_import(path)
    assert EmailAddress.objects.get().opt_out, "CSV import"

    post_form(client, form, email="ann@example.com")
    client.post(confirm_path(mail.outbox[-1].alternatives[0][0]))
    assert not EmailAddress.objects.get().opt_out, "her own confirmed sign-up lifts it"
    assert not Suppression.objects.exists()


def test_someone_elses_record_using_the_address_as_a_further_one_only_loses_it():
    bob = make_contact(email="bob@example.org", others=["ann@example.com"], last_name="Keepme")
    ann = make_contact(email="ann@example.com", last_name="Zwickyquux")
    erase("ann@example.com")
    bob.refresh_from_db()
    assert bob.email == "bob@example.org"
    assert not bob.email_address_links.filter(email_address__address="ann@example.com").exists()
    assert not type(ann).objects.filter(pk=ann.pk).exists()
