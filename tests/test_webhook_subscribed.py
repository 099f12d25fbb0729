"""The "subscribed" webhook event: one per confirmed sign-up, recorded by the database in the
confirmation's transaction and delivered signed; expired, forged or repeated confirmations,
and confirmations rolled back, give none."""

from __future__ import annotations

import pytest
from django.core import mail, signing
from django.db import transaction

from subscriptions.consent import Visit
from subscriptions.models import SignUp
from subscriptions.signup import confirm
from targets.models import EmailAddress, Lead, TargetListMember
from tests.factories import make_contact, make_target_list
from tests.subscription_factories import confirm_path, later, make_form, post_form
from webhooks.delivery import SIGNATURE_HEADER, deliver_due, verify
from webhooks.models import EventType, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db


def make_endpoint(url: str, *types: str) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(name="CRM", url=url, event_types=list(types))


def sign_up(client, form, email: str = "Ann@Example.com") -> str:
    assert post_form(client, form, email=email).status_code == 303
    return confirm_path(mail.outbox[-1].alternatives[0][0])


def test_a_confirmation_is_delivered_signed_with_address_form_and_lists(client, webhook_receiver):
    news, offers = make_target_list(name="News"), make_target_list(name="Offers")
    form = make_form(offers, news)
    hook = make_endpoint(webhook_receiver.url, EventType.SUBSCRIBED)
    others = make_endpoint(webhook_receiver.url + "others/", EventType.SENT, EventType.OPTED_OUT)
    link = sign_up(client, form)
    assert not WebhookEvent.objects.exists(), "signing up is not subscribing"

    assert client.post(link).status_code == 303
    assert client.post(link).status_code == 303  # a second click: no second event
    assert TargetListMember.objects.count() == 2
    assert deliver_due().delivered == 1
    [batch] = webhook_receiver.accepted()
    assert verify(hook.secret, batch.headers[SIGNATURE_HEADER], batch.body)
    assert not verify(others.secret, batch.headers[SIGNATURE_HEADER], batch.body)
    [event] = batch.events
    sign_up_row = SignUp.objects.get()
    stored = WebhookEvent.objects.get()
    assert stored.endpoint == hook and stored.delivered_at is not None
    assert event["id"] == str(stored.uid) and event["type"] == "subscribed"
    assert event["occurred_at"] == sign_up_row.confirmed_at.isoformat()
    assert event["recipient"]["email"] == "ann@example.com"
    assert event["form"] == {"id": form.pk, "name": "Newsletter form"}
    assert event["lists"] == [{"id": news.pk, "name": "News"}, {"id": offers.pk, "name": "Offers"}]
    news.name = "Renamed later"
    news.save()
    WebhookEvent.objects.update(delivered_at=None)
    assert deliver_due().delivered == 1
    assert webhook_receiver.accepted()[-1].events[0]["lists"][0]["name"] == "News", "as joined"


def test_an_opted_out_person_confirming_again_is_subscribed_once(client):
    target_list = make_target_list()
    member = target_list.add(make_contact(email="ann@example.com"))
    TargetListMember.objects.filter(pk=member.pk).update(opted_out=True)
    EmailAddress.objects.filter(address="ann@example.com").update(opt_out=True)
    make_endpoint("https://crm.example.com/", *EventType.values)
    client.post(sign_up(client, make_form(target_list)))
    assert list(WebhookEvent.objects.values_list("event_type", flat=True)) == ["subscribed"]


def test_an_expired_link_gives_no_event(client):
    make_endpoint("https://crm.example.com/", EventType.SUBSCRIBED)
    link = sign_up(client, make_form(confirm_within_hours=48))
    with later(hours=49):
        assert client.post(link).status_code == 404
    assert not Lead.objects.exists() and not WebhookEvent.objects.exists()


def test_a_forged_link_gives_no_event(client):
    make_endpoint("https://crm.example.com/", EventType.SUBSCRIBED)
    real = sign_up(client, make_form()).rstrip("/").rsplit("/", 1)[1]
    altered = real[:-2] + ("AA" if not real.endswith("AA") else "BB")
    other_salt = signing.TimestampSigner(salt="massmail.unsubscribe").sign(real.split(":")[0])
    for token in (altered, other_salt):
        assert client.post(f"/subscribe/confirm/{token}/").status_code == 404
    assert SignUp.objects.get().status == "pending" and not WebhookEvent.objects.exists()


def test_a_confirmation_rolled_back_leaves_no_event(client):
    make_endpoint("https://crm.example.com/", EventType.SUBSCRIBED)
    sign_up(client, make_form())
    pending = SignUp.objects.select_related("form").get()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert confirm(pending, Visit(None, "", pending.created_at)) is not None
        assert WebhookEvent.objects.count() == 1
        raise RuntimeError("the request failed after confirming")
    assert not WebhookEvent.objects.exists() and SignUp.objects.get().status == "pending"


def test_the_admin_offers_the_subscribed_type(admin_client):
    page = admin_client.get("/admin/webhooks/webhookendpoint/add/").content.decode()
    assert 'value="subscribed"' in page and "Subscribed (sign-up confirmed)" in page
    response = admin_client.post(
        "/admin/webhooks/webhookendpoint/add/",
        {
            "name": "CRM",
            "url": "https://crm.example.com/",
            "event_types": ["subscribed"],
            "secret": "shared",
            "active": "on",
        },
    )
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().event_types == ["subscribed"]
