"""Webhook deliveries to a real receiver: signed batches, and a receiver that is down for a
while, then answers errors, then is back gets every event, none lost, none forged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from tests.factories import make_contact, make_mass_email
from tests.log_factories import log, make_queue_item
from webhooks import delivery
from webhooks.delivery import SIGNATURE_HEADER, backoff, deliver_due, verify
from webhooks.models import EventType, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db
Action = CampaignLogRecord.Action


def make_endpoint(url: str, *types: str, **overrides) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        name="CRM", url=url, event_types=list(types or EventType.values), **overrides
    )


def send_log_rows(count: int, mass_email=None) -> list:
    """`count` Sent log entries, written as the engine writes them (the trigger records events)."""
    mass_email = mass_email or make_mass_email()
    items = [make_queue_item(mass_email, make_contact()) for _ in range(count)]
    for item in items:
        log(item, Action.SENT)
    return items


def received_ids(receiver) -> list[str]:
    return [event["id"] for batch in receiver.accepted() for event in batch.events]


def test_batches_are_signed_and_carry_each_event_once(webhook_receiver):
    endpoint = make_endpoint(webhook_receiver.url, EventType.SENT)
    items = send_log_rows(delivery.BATCH + 20)
    result = deliver_due()
    assert (result.delivered, result.batches, result.failures) == (delivery.BATCH + 20, 2, 0)
    assert [len(batch.events) for batch in webhook_receiver.batches] == [delivery.BATCH, 20]
    for batch in webhook_receiver.batches:
        assert verify(endpoint.secret, batch.headers[SIGNATURE_HEADER], batch.body)
        assert not verify("another secret", batch.headers[SIGNATURE_HEADER], batch.body)
        assert not verify(endpoint.secret, batch.headers[SIGNATURE_HEADER], batch.body + b" ")
    ids = received_ids(webhook_receiver)
    assert len(ids) == len(set(ids)) == len(items)
    first = webhook_receiver.batches[0].events[0]
    assert first["type"] == "sent" and first["queue_item"] == str(items[0].uid)
    assert first["recipient"] == {
        "email": items[0].email_address.address,
        "type": "Contact",
        "id": items[0].object_id,
    }
    assert deliver_due().delivered == 0  # nothing is sent twice once taken
    endpoint.refresh_from_db()
    assert endpoint.last_status == "HTTP 200" and endpoint.failures == 0


def test_an_old_signature_is_refused(webhook_receiver):
    endpoint = make_endpoint(webhook_receiver.url)
    send_log_rows(1)
    deliver_due()
    batch = webhook_receiver.batches[0]
    header = batch.headers[SIGNATURE_HEADER]
    sent_at = int(header.split(",")[0].removeprefix("t="))
    assert verify(endpoint.secret, header, batch.body, now=sent_at + 299)
    assert not verify(endpoint.secret, header, batch.body, now=sent_at + 301)


def test_a_receiver_down_then_failing_then_back_gets_every_event(webhook_receiver):
    endpoint = make_endpoint(webhook_receiver.url, EventType.SENT)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        webhook_receiver.stop()
        early = send_log_rows(130)
        assert deliver_due().failures == 1
        endpoint.refresh_from_db()
        assert endpoint.last_status.startswith("not delivered:")
        assert endpoint.retry_at == start + backoff(1)
        clock.shift(backoff(1) / 2)
        assert deliver_due().failures == 0  # put off: not even tried
        later = send_log_rows(40)  # events keep coming while it is down

        clock.shift(backoff(1))
        webhook_receiver.start()
        webhook_receiver.answer = 503
        assert deliver_due().failures == 1
        endpoint.refresh_from_db()
        assert (endpoint.last_status, endpoint.failures) == ("HTTP 503", 2)
        assert endpoint.retry_at == timezone.now() + backoff(2) == timezone.now() + 2 * backoff(1)
        assert WebhookEvent.objects.filter(delivered_at__isnull=True).count() == 170

        clock.shift(backoff(2))
        webhook_receiver.answer = 200
        result = deliver_due()
    assert (result.delivered, result.failures) == (170, 0)
    expected = {str(e.uid) for e in WebhookEvent.objects.filter(queue_item__in=[*early, *later])}
    assert len(expected) == 170
    assert set(received_ids(webhook_receiver)) == expected
    # The batch the receiver answered 503 to came again with the same event ids.
    refused = {e["id"] for e in webhook_receiver.batches[0].events}
    assert webhook_receiver.batches[0].status == 503 and refused <= expected
    for batch in webhook_receiver.batches:
        assert verify(endpoint.secret, batch.headers[SIGNATURE_HEADER], batch.body)
    endpoint.refresh_from_db()
    assert (endpoint.failures, endpoint.retry_at, endpoint.last_status) == (0, None, "HTTP 200")
    assert endpoint.last_success_at is not None
    assert not WebhookEvent.objects.filter(delivered_at__isnull=True).exists()


def test_backoff_doubles_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff(30) == timedelta(hours=1)


def test_an_endpoint_held_by_another_delivery_is_left_alone(webhook_receiver):
    endpoint = make_endpoint(webhook_receiver.url)
    send_log_rows(2)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        lease_until=timezone.now() + timedelta(minutes=1)
    )
    assert deliver_due().delivered == 0 and webhook_receiver.batches == []
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert deliver_due().delivered == 2


def test_delivered_events_are_kept_a_week(webhook_receiver):
    make_endpoint(webhook_receiver.url)
    send_log_rows(3)
    deliver_due()
    assert WebhookEvent.objects.count() == 3
    with time_machine.travel(timezone.now() + delivery.KEEP_DELIVERED + timedelta(minutes=1)):
        deliver_due()
    assert not WebhookEvent.objects.exists()


def test_the_readmes_receiver_code_verifies_a_delivery(webhook_receiver):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = readme.split("compared in constant time")[1].split("```python\n")[1].split("```")[0]
    namespace: dict = {}
    exec(code, namespace)  # the documented snippet, as a receiver would paste it
    endpoint = make_endpoint(webhook_receiver.url)
    send_log_rows(2)
    deliver_due()
    batch = webhook_receiver.batches[0]
    assert namespace["verified"](endpoint.secret, batch.headers[SIGNATURE_HEADER], batch.body)
    assert not namespace["verified"]("wrong", batch.headers[SIGNATURE_HEADER], batch.body)
