"""Webhook events are recorded by the database with what they are about: the engine's Sent
entries, every tracked open and click (machine hits marked), bounces, complaints, opt-outs
and a mass email finishing; only for endpoints subscribed to the type, only if committed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.test import Client
from django.utils import timezone

from bounces.classify import Report, Verdict
from bounces.effects import apply_report
from campaigns.models import CampaignLogRecord
from massmail import sending
from massmail.models import MassEmail, OutboundSettings
from tests.factories import make_campaign, make_contact, make_mass_email, make_tracking_url
from tests.fixtures.sending import make_queued_mass_email
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item
from tests.log_factories import log, make_queue_item
from tracking import links
from webhooks.delivery import payload
from webhooks.models import EventType, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db
SCANNER_AGENT = "Mozilla/5.0 (compatible; Barracuda Sentinel link scanner)"


def endpoint(*types: str, **overrides) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        name="CRM",
        url="https://crm.example.com/hooks/",
        event_types=list(types or EventType.values),
        **overrides,
    )


def events_of(hook: WebhookEndpoint) -> list[dict]:
    return [payload(event) for event in hook.events.order_by("id")]


def test_the_engine_sending_a_mass_email_gives_sent_and_finished(
    smtp_settings, smtp_sink, outbound_unlimited
):
    every, only_finished = endpoint(), endpoint(EventType.MASS_EMAIL_FINISHED)
    endpoint(active=False)
    mass_email = make_queued_mass_email(3)
    sending.tick()
    sending.tick()
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.COMPLETE
    events = events_of(every)
    assert [e["type"] for e in events] == ["sent"] * 3 + ["mass_email_finished"]
    items = {str(item.uid): item for item in mass_email.queue_items.all()}
    assert {e["queue_item"] for e in events[:3]} == set(items)
    for event in events[:3]:
        item = items[event["queue_item"]]
        assert event["recipient"]["email"] == item.email_address.address
        assert (event["campaign"], event["mass_email"]) == (mass_email.campaign_id, mass_email.pk)
        assert event["test"] is False
    assert [e["type"] for e in events_of(only_finished)] == ["mass_email_finished"]
    assert WebhookEvent.objects.count() == 5  # the inactive endpoint gets none
    assert len({e["id"] for e in events}) == 4


def test_every_click_and_open_is_an_event_with_machine_hits_marked(hit_writer):
    hook = endpoint(EventType.CLICKED, EventType.OPENED)
    OutboundSettings.objects.update_or_create(pk=1, defaults={"open_tracking": True})
    contact = make_contact()
    campaign = make_campaign()
    item = make_sent_item(make_mass_email(campaign), contact)
    link = make_tracking_url(campaign, url="https://example.org/offer")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        Client().get(links.click_url("", item.uid, link.pk), HTTP_USER_AGENT=SCANNER_AGENT)
        clock.shift(timedelta(minutes=30))
        Client().get(links.click_url("", item.uid, link.pk), HTTP_USER_AGENT=BROWSER_AGENT)
        clock.shift(timedelta(minutes=1))
        Client().get(links.open_pixel_url("", item.uid), HTTP_USER_AGENT=BROWSER_AGENT)
        Client().get(links.trap_url("", item.uid), HTTP_USER_AGENT=SCANNER_AGENT)
    events = events_of(hook)
    assert [(e["type"], e["machine"]) for e in events] == [
        ("clicked", True),
        ("clicked", False),
        # Read when delivered: the hidden link hit just after made the open a machine's.
        ("opened", True),
    ]
    assert events[0]["machine_reason"] == "scanner or image proxy user agent"
    assert events[2]["machine_reason"] == "hidden link hit in the same burst"
    assert events[0]["link"] == {"id": link.pk, "url": "https://example.org/offer"}
    assert events[1]["occurred_at"] == (start + timedelta(minutes=30)).isoformat()
    assert events[2]["recipient"] == {"email": contact.email, "type": "Contact", "id": contact.pk}
    # The log keeps one Clicked entry per item and link; the events keep every hit.
    clicked = CampaignLogRecord.objects.filter(action=CampaignLogRecord.Action.CLICKED)
    assert clicked.count() == 1


def test_bounces_complaints_and_opt_outs():
    hook = endpoint()
    mass_email = make_mass_email()
    hard, soft, angry = (make_queue_item(mass_email, make_contact()) for _ in range(3))
    for item, verdict in ((hard, "hard"), (soft, "soft"), (angry, "complaint")):
        address = item.email_address.address
        report = Report([Verdict(address, verdict, "5.0.0", "test")])
        apply_report(report, source="test", queue_item=item, event_key=f"key-{item.pk}")
    events = events_of(hook)
    assert [(e["type"], e["recipient"]["email"]) for e in events] == [
        ("bounced_hard", hard.email_address.address),
        ("bounced_soft", soft.email_address.address),
        ("complained", angry.email_address.address),
        ("opted_out", angry.email_address.address),
    ]
    assert all(e["queue_item"] and e["mass_email"] == mass_email.pk for e in events)
    apply_report(
        Report([Verdict("stranger@example.com", "complaint", "", "abuse")]), source="esp:x"
    )
    stranger = events_of(hook)[-1]
    assert stranger["type"] == "complained" and stranger["queue_item"] is None
    assert stranger["recipient"]["email"] == "stranger@example.com"


def test_an_event_exists_only_if_its_row_was_committed():
    hook = endpoint()
    item = make_queue_item(make_mass_email(), make_contact())
    with pytest.raises(RuntimeError), transaction.atomic():
        log(item, CampaignLogRecord.Action.SENT)
        assert hook.events.count() == 1  # the same transaction
        raise RuntimeError("rolled back")
    assert not hook.events.exists()


def test_test_sends_are_marked_and_types_not_chosen_are_not_recorded():
    clicks_only = endpoint(EventType.CLICKED)
    sent_only = endpoint(EventType.SENT)
    item = make_queue_item(make_mass_email(), make_contact(), is_test=True)
    log(item, CampaignLogRecord.Action.SENT, is_test=True)
    assert not clicks_only.events.exists()
    assert [e["test"] for e in events_of(sent_only)] == [True]
