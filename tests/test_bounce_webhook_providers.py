"""Brevo, MailerSend, Mailjet and Postal events, in the payloads django-anymail documents.

Payload shapes follow anymail's own webhook tests and the providers' webhook
documentation; only addresses, ids and our queue item id are filled in. Each
provider's own hard/soft flag decides the verdict; Postal and MailerSend send no
metadata back, so their events find the queue item by the message id recorded at
send time. A malformed body answers 400 and writes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.test import override_settings

from bounces.models import BounceEvent
from campaigns.models import CampaignLogRecord
from massmail.models import QueueItem
from targets.models import EmailAddress
from tests.factories import make_queue_item

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailWarning"),
]

SECRET = "hookuser:hook-pass-123"
MAILERSEND_SECRET = "mailersend-signing-secret"
POSTAL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)


def postal_public_key() -> str:
    pem = POSTAL_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "".join(pem.decode().splitlines()[1:-1])


ANYMAIL_SETTINGS = {
    "WEBHOOK_SECRET": SECRET,
    "MAILERSEND_SIGNING_SECRET": MAILERSEND_SECRET,
    "POSTAL_WEBHOOK_KEY": postal_public_key(),
}


def post(client, provider: str, body: bytes | str):
    body = body.encode() if isinstance(body, str) else body
    headers = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(SECRET.encode()).decode()}
    if provider == "mailersend":
        digest = hmac.new(MAILERSEND_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["HTTP_SIGNATURE"] = digest
    if provider == "postal":
        signature = POSTAL_KEY.sign(body, padding.PKCS1v15(), hashes.SHA1())
        headers["HTTP_X_POSTAL_SIGNATURE"] = base64.b64encode(signature).decode()
    with override_settings(ANYMAIL=ANYMAIL_SETTINGS):
        return client.post(
            f"/webhooks/anymail/{provider}/tracking/",
            data=body,
            content_type="application/json",
            **headers,
        )


def post_json(client, provider: str, payload) -> int:
    return post(client, provider, json.dumps(payload)).status_code


def state(item: QueueItem) -> tuple[bool, list[tuple[str, str]]]:
    address = EmailAddress.objects.get(pk=item.email_address_id)
    log = CampaignLogRecord.objects.filter(queue_item=item).values_list("action", "bounce_type")
    return address.invalid, sorted(log)


def event_of(item: QueueItem) -> tuple[str, str]:
    event = BounceEvent.objects.get(queue_item=item)
    return event.verdict, event.reason


# ------------------------------------------------------------------------- Brevo


def brevo(event: str, item: QueueItem, reason: str) -> dict:
    return {
        "event": event,
        "email": item.email_address.address,
        "id": 9999999,
        "ts_epoch": 1520363423000,
        "message-id": "<201803011158.9876543210@smtp-relay.mailin.fr>",
        "reason": reason,
        "X-Mailin-custom": json.dumps({"queue_item_id": str(item.uid)}),
    }


def test_brevo_hard_bounce_is_hard_whatever_the_status_text(client) -> None:
    item = make_queue_item()
    payload = brevo(
        "hard_bounce",
        item,
        " RecipientError: 550 5.5.0 Requested action not taken: mailbox unavailable.",
    )
    assert post_json(client, "brevo", payload) == 200
    assert state(item) == (True, [("bounced", "hard")])
    assert event_of(item) == ("hard", "user unknown")


def test_brevo_soft_bounce_is_soft_even_for_a_missing_mx(client) -> None:
    item = make_queue_item()
    payload = brevo("soft_bounce", item, "undefined Unable to find MX of domain no-mx.example")
    assert post_json(client, "brevo", payload) == 200
    assert state(item) == (False, [("bounced", "soft")])
    assert event_of(item) == ("soft", "host unknown")


def test_brevo_blocked_is_a_soft_policy_rejection(client) -> None:
    item = make_queue_item()
    assert post_json(client, "brevo", brevo("blocked", item, "blocked : due to blacklist user"))
    assert state(item) == (False, [("bounced", "soft")])
    assert event_of(item) == ("soft", "policy")


# -------------------------------------------------------------------- MailerSend


def mailersend(kind: str, item: QueueItem, reason: str, message_id: str) -> dict:
    return {
        "type": f"activity.{kind}",
        "data": {
            "object": "activity",
            "id": f"63fd251d5c00f8e52001f{kind[:3]}",
            "type": kind,
            "created_at": "2023-02-27T21:48:13.593000Z",
            "email": {
                "status": "rejected",
                "message": {"id": message_id},
                "recipient": {"email": item.email_address.address},
            },
            "morph": {"object": "recipient_bounce", "reason": reason},
        },
    }


def test_mailersend_hard_bounce_reaches_its_item_by_the_recorded_message_id(client) -> None:
    item = make_queue_item(message_id="63fd25194d5edba3da09e044")
    payload = mailersend("hard_bounced", item, "Host or domain name not found", item.message_id)
    assert post_json(client, "mailersend", payload) == 200
    assert state(item) == (True, [("bounced", "hard")])
    assert event_of(item) == ("hard", "host unknown")


def test_mailersend_soft_bounce_is_soft(client) -> None:
    item = make_queue_item(message_id="62fb66bef54a112e920b5493")
    payload = mailersend("soft_bounced", item, "Unknown reason", item.message_id)
    assert post_json(client, "mailersend", payload) == 200
    assert state(item) == (False, [("bounced", "soft")])


# ----------------------------------------------------------------------- Mailjet


def mailjet_bounce(item: QueueItem, *, hard: bool, error: str) -> dict:
    return {
        "event": "bounce",
        "time": 1430812195,
        "MessageID": 13792286917004336,
        "Message_GUID": "1ab23cd4-e567-8901-2345-6789f0gh1i2j",
        "email": item.email_address.address,
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": "",
        "CustomID": "",
        "Payload": json.dumps({"queue_item_id": str(item.uid)}),
        "blocked": False,
        "hard_bounce": hard,
        "error_related_to": "recipient",
        "error": error,
    }


def test_mailjet_soft_bounce_flag_wins_over_the_error(client) -> None:
    item = make_queue_item()
    assert post_json(client, "mailjet", mailjet_bounce(item, hard=False, error="quota exceeded"))
    assert state(item) == (False, [("bounced", "soft")])
    assert event_of(item) == ("soft", "mailbox full")


def test_mailjet_hard_bounce_is_hard(client) -> None:
    item = make_queue_item()
    assert post_json(client, "mailjet", mailjet_bounce(item, hard=True, error="user unknown"))
    assert state(item) == (True, [("bounced", "hard")])
    assert event_of(item) == ("hard", "user unknown")


# ------------------------------------------------------------------------ Postal


def postal_message(item: QueueItem, postal_id: int) -> dict:
    return {
        "id": postal_id,
        "token": "MzWWQPubXXWz",
        "direction": "outgoing",
        "message_id": "cfb29da8ed1e4ed5a6c8a0f24d7a9ef3@rp.postal.example.com",
        "to": item.email_address.address,
        "from": "news@massmail.example",
        "subject": "Spring offers",
        "timestamp": 1606753318.072171,
        "spam_status": "NotChecked",
        "tag": None,
    }


def postal_status(item: QueueItem, status: str, output: str, *, postal_id: int = 1571) -> dict:
    event = "MessageDeliveryFailed" if status == "HardFail" else "MessageDelayed"
    return {
        "event": event,
        "timestamp": 1606753101.084981,
        "payload": {
            "message": postal_message(item, postal_id),
            "status": status,
            "details": "Permanent SMTP delivery error when sending to mx.example.org",
            "output": output,
            "sent_with_ssl": False,
            "timestamp": 1606753318.7010343,
            "time": 0.52,
        },
        "uuid": f"5fec5077-dae7-4989-94d5-e1963f3e{postal_id:04d}",
    }


def test_postal_delivery_failed_reaches_its_item_by_the_integer_message_id(client) -> None:
    item = make_queue_item(message_id="1571")  # the send recorded Postal's id as text
    payload = postal_status(
        item, "HardFail", "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"
    )
    assert post_json(client, "postal", payload) == 200
    assert state(item) == (True, [("bounced", "hard")])
    assert event_of(item) == ("hard", "user unknown")


def test_postal_soft_fail_is_a_deferral_not_a_bounce(client) -> None:
    item = make_queue_item(message_id="1572")
    payload = postal_status(item, "SoftFail", "451 4.7.1 Try again later", postal_id=1572)
    assert post_json(client, "postal", payload) == 200
    assert state(item) == (False, [])
    assert not BounceEvent.objects.exists()


def test_postal_bounce_message_reaches_its_item(client) -> None:
    item = make_queue_item(message_id="233843")
    payload = {
        "event": "MessageBounced",
        "timestamp": 1606753101.961181,
        "payload": {
            "original_message": postal_message(item, 233843),
            "bounce": {
                "id": 233864,
                "token": "nII5p0Cp8onV",
                "direction": "incoming",
                "message_id": "E1kiRR8-0001ay-Iq@example.com",
                "to": "bk87jw@psrp.postal.example.com",
                "from": None,
                "subject": "Mail delivery failed: returning message to sender",
                "timestamp": 1606436523.6060522,
                "spam_status": "NotChecked",
                "tag": None,
            },
        },
        "uuid": "0fcc831f-92b9-4e2b-97f2-d873abc77fab",
    }
    assert post_json(client, "postal", payload) == 200
    assert CampaignLogRecord.objects.filter(queue_item=item, action="bounced").exists()


# ------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    "provider, body",
    [
        ("sendgrid", "[{'email': 'not json'"),
        ("brevo", "{"),
        ("postmark", b"\xff\xfe not utf-8"),
        ("mailjet", "{}"),
        ("mailersend", json.dumps({"data": {"email": {}}})),
        ("postal", json.dumps({"payload": {"message": "not an object"}})),
    ],
)
def test_a_malformed_body_answers_400_and_writes_nothing(client, provider: str, body) -> None:
    item = make_queue_item()
    assert post(client, provider, body).status_code == 400
    assert state(item) == (False, [])
    assert not BounceEvent.objects.exists()


def test_a_batch_with_one_malformed_event_applies_none_of_it(client) -> None:
    item = make_queue_item()
    good = {
        "email": item.email_address.address,
        "timestamp": 1513299569,
        "event": "bounce",
        "sg_event_id": "good-1",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "status": "5.1.1",
        "type": "bounce",
        "queue_item_id": str(item.uid),
    }
    assert post(client, "sendgrid", json.dumps([good, "not an event"])).status_code == 400
    assert state(item) == (False, [])
    assert not BounceEvent.objects.exists()
