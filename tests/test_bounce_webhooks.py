"""ESP webhooks: the providers' documented payloads, posted through anymail's views.

Payload shapes follow each provider's documentation examples (SendGrid Event
Webhook, Postmark bounce/spam-complaint webhooks, Mailgun "failed"/"complained"
webhooks, Amazon SES event notifications delivered by SNS); only the recipient,
ids and our queue item id are filled in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import pytest
from django.test import override_settings

from bounces.models import BounceEvent
from campaigns.models import CampaignLogRecord
from targets.models import EmailAddress
from tests.factories import make_contact, make_queue_item

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailWarning"),
]

SECRET = "hookuser:hook-pass-123"
MAILGUN_KEY = "key-0123456789abcdef"
ANYMAIL_SETTINGS = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


def auth(credentials: str = SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


# ------------------------------------------------------------------ provider payloads


def sendgrid_bounce(address: str, queue_item_id: str, *, kind: str = "bounce") -> list[dict]:
    return [
        {
            "email": address,
            "timestamp": 1513299569,
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "event": "bounce",
            "category": "cat facts",
            "sg_event_id": f"6g4ZI7SA-xmRDv57GoPIPw=={uuid.uuid4().hex[:6]}",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
            "status": "5.1.1",
            "type": kind,
            "queue_item_id": queue_item_id,  # a custom arg; SendGrid merges it into events
        }
    ]


def sendgrid_spamreport(address: str, queue_item_id: str) -> list[dict]:
    return [
        {
            "email": address,
            "timestamp": 1513299569,
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "event": "spamreport",
            "category": "cat facts",
            "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==spam",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "queue_item_id": queue_item_id,
        }
    ]


def postmark_bounce(address: str, queue_item_id: str, *, kind: str = "HardBounce") -> dict:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "Name": "Hard bounce" if kind == "HardBounce" else "Soft bounce",
        "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"queue_item_id": queue_item_id},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": address,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Test subject",
        "Content": "<Full dump of bounce>",
    }


def postmark_spam_complaint(address: str, queue_item_id: str) -> dict:
    return {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "Test",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Metadata": {"queue_item_id": queue_item_id},
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": address,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Test subject",
        "Content": "<Abuse report dump>",
    }


def mailgun_event(event_data: dict) -> dict:
    token = uuid.uuid4().hex
    timestamp = "1529006854"
    signature = hmac.new(
        MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def mailgun_failed(address: str, queue_item_id: str, *, severity: str = "permanent") -> dict:
    return mailgun_event(
        {
            "event": "failed",
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": 1521233195.375624,
            "log-level": "error",
            "severity": severity,
            "reason": "bounce",
            "envelope": {
                "sender": "bob@sandbox.mailgun.org",
                "transport": "smtp",
                "targets": address,
            },
            "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
            "delivery-status": {
                "attempt-no": 1,
                "message": "550 5.1.1 The email account that you tried to reach does not exist.",
                "code": 550,
                "description": "",
                "session-seconds": 0.1,
            },
            "message": {
                "headers": {
                    "to": address,
                    "message-id": "20130503182626.18666.16540@sandbox.mailgun.org",
                    "from": "Bob <bob@sandbox.mailgun.org>",
                    "subject": "Test permanent_fail webhook",
                },
                "attachments": [],
                "size": 111,
            },
            "recipient": address,
            "recipient-domain": address.split("@")[1],
            "campaigns": [],
            "tags": ["my_tag_1"],
            "user-variables": {"queue_item_id": queue_item_id},
        }
    )


def mailgun_complained(address: str, queue_item_id: str) -> dict:
    return mailgun_event(
        {
            "event": "complained",
            "id": "-Agny091SquKnsrW2NEKUA",
            "timestamp": 1521233123.501324,
            "log-level": "warn",
            "envelope": {"sending-ip": "173.193.210.33"},
            "flags": {"is-test-mode": False},
            "message": {
                "headers": {
                    "to": address,
                    "message-id": "20110215055645.25246.63817@sandbox.mailgun.org",
                    "from": "Bob <bob@sandbox.mailgun.org>",
                    "subject": "Test complained webhook",
                },
                "attachments": [],
                "size": 111,
            },
            "recipient": address,
            "campaigns": [],
            "tags": ["my_tag_1"],
            "user-variables": {"queue_item_id": queue_item_id},
        }
    )


def ses_notification(ses_event: dict, message_id: str | None = None) -> dict:
    return {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": "2017-08-05T00:41:02.669Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEw6JRN...",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"
        "f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&"
        "SubscriptionArn=arn:aws:sns:us-east-1:123456789012:ses-events:example",
    }


def ses_mail(address: str, queue_item_id: str) -> dict:
    return {
        "timestamp": "2017-08-05T00:40:02.012Z",
        "source": "Sender Name <sender@example.com>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
        "sendingAccountId": "123456789012",
        "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
        "destination": [address],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Sender Name <sender@example.com>"},
            {"name": "To", "value": address},
            {"name": "Subject", "value": "Message sent from Amazon SES"},
            {"name": "X-Metadata", "value": json.dumps({"queue_item_id": queue_item_id})},
        ],
        "commonHeaders": {
            "from": ["Sender Name <sender@example.com>"],
            "to": [address],
            "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
            "subject": "Message sent from Amazon SES",
        },
        "tags": {"ses:configuration-set": ["ConfigSet"]},
    }


def ses_bounce(address: str, queue_item_id: str, *, kind: str = "Permanent") -> dict:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General" if kind == "Permanent" else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1" if kind == "Permanent" else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                    if kind == "Permanent"
                    else "smtp; 452 4.2.2 mailbox full",
                }
            ],
            "timestamp": "2017-08-05T00:41:02.669Z",
            "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
            "reportingMTA": "dsn; mta.example.com",
        },
        "mail": ses_mail(address, queue_item_id),
    }


def ses_complaint(address: str, queue_item_id: str) -> dict:
    return {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": "2017-08-05T00:41:02.669Z",
            "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2017-08-05T00:41:02.669Z",
        },
        "mail": ses_mail(address, queue_item_id),
    }


# ----------------------------------------------------------------------------- posting


def post(client, provider: str, payload, credentials: str | None = SECRET, **headers):
    extra = auth(credentials) if credentials else {}
    if provider == "amazon_ses":
        extra.update(
            HTTP_X_AMZ_SNS_MESSAGE_TYPE=payload["Type"],
            HTTP_X_AMZ_SNS_MESSAGE_ID=payload["MessageId"],
        )
    with override_settings(ANYMAIL=ANYMAIL_SETTINGS):
        return client.post(
            f"/webhooks/anymail/{provider}/tracking/",
            data=json.dumps(payload),
            content_type="application/json",
            **extra,
            **headers,
        )


def state(item) -> tuple[bool, bool, list[tuple[str, str]]]:
    address = EmailAddress.objects.get(pk=item.email_address_id)
    log = CampaignLogRecord.objects.filter(queue_item=item).values_list("action", "bounce_type")
    return address.invalid, address.opt_out, sorted(log)


HARD_BOUNCES = {
    "sendgrid": sendgrid_bounce,
    "postmark": postmark_bounce,
    "mailgun": mailgun_failed,
    "amazon_ses": lambda a, q: ses_notification(ses_bounce(a, q)),
}
COMPLAINTS = {
    "sendgrid": sendgrid_spamreport,
    "postmark": postmark_spam_complaint,
    "mailgun": mailgun_complained,
    "amazon_ses": lambda a, q: ses_notification(ses_complaint(a, q)),
}


@pytest.mark.parametrize("provider", sorted(HARD_BOUNCES))
def test_hard_bounce_marks_the_address_invalid_once(client, provider: str) -> None:
    item = make_queue_item()
    payload = HARD_BOUNCES[provider](item.email_address.address, str(item.uid))

    assert post(client, provider, payload).status_code == 200
    assert post(client, provider, payload).status_code == 200  # delivered twice

    assert state(item) == (True, False, [("bounced", "hard")])
    assert BounceEvent.objects.get().source.startswith("esp:")


@pytest.mark.parametrize("provider", sorted(COMPLAINTS))
def test_complaint_opts_the_address_out(client, provider: str) -> None:
    item = make_queue_item()
    payload = COMPLAINTS[provider](item.email_address.address, str(item.uid))
    assert post(client, provider, payload).status_code == 200
    assert post(client, provider, payload).status_code == 200
    assert state(item) == (False, True, [("opted_out", "")])
    assert BounceEvent.objects.count() == 1


@pytest.mark.parametrize("provider", sorted(HARD_BOUNCES))
def test_without_valid_credentials_nothing_is_applied(client, provider: str) -> None:
    item = make_queue_item()
    payload = HARD_BOUNCES[provider](item.email_address.address, str(item.uid))

    missing = post(client, provider, payload, credentials=None)
    wrong = post(client, provider, payload, credentials="hookuser:guess")

    # Amazon SNS first asks without credentials and expects a 401 challenge.
    assert missing.status_code in (400, 401, 403) and wrong.status_code in (400, 403)
    assert state(item) == (False, False, [])
    assert not BounceEvent.objects.exists()


def test_without_a_configured_secret_events_are_refused(client) -> None:
    item = make_queue_item()
    payload = postmark_bounce(item.email_address.address, str(item.uid))
    with override_settings(ANYMAIL={}):
        response = client.post(
            "/webhooks/anymail/postmark/tracking/",
            data=json.dumps(payload),
            content_type="application/json",
        )
    assert response.status_code == 400
    assert state(item) == (False, False, [])


@pytest.mark.parametrize(
    "provider, payload",
    [
        ("sendgrid", lambda a, q: sendgrid_bounce(a, q, kind="blocked")),
        ("postmark", lambda a, q: postmark_bounce(a, q, kind="SoftBounce")),
        ("amazon_ses", lambda a, q: ses_notification(ses_bounce(a, q, kind="Transient"))),
    ],
)
def test_temporary_failures_are_soft(client, provider: str, payload) -> None:
    item = make_queue_item()
    response = post(client, provider, payload(item.email_address.address, str(item.uid)))
    assert response.status_code == 200
    assert state(item) == (False, False, [("bounced", "soft")])


def test_mailgun_temporary_failure_is_a_deferral_not_a_bounce(client) -> None:
    item = make_queue_item()
    payload = mailgun_failed(item.email_address.address, str(item.uid), severity="temporary")
    assert post(client, "mailgun", payload).status_code == 200
    assert state(item) == (False, False, [])
    assert not BounceEvent.objects.exists()


def test_bounce_without_metadata_applies_to_the_known_address(client) -> None:
    make_contact(email="known@example.org")
    payload = postmark_bounce("known@example.org", "")
    payload["Metadata"] = {}
    assert post(client, "postmark", payload).status_code == 200
    assert EmailAddress.objects.get(address="known@example.org").invalid
    assert not CampaignLogRecord.objects.exists()


def test_unsubscribe_and_dropped_events(client) -> None:
    unsubscriber, dropped = make_queue_item(), make_queue_item()
    common = {"timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>"}
    events = [
        {
            **common,
            "email": unsubscriber.email_address.address,
            "event": "unsubscribe",
            "sg_event_id": "unsub-1",
            "queue_item_id": str(unsubscriber.uid),
        },
        {
            **common,
            "email": dropped.email_address.address,
            "event": "dropped",
            "reason": "Bounced Address",
            "status": "5.0.0",
            "sg_event_id": "drop-1",
            "queue_item_id": str(dropped.uid),
        },
        {**common, "email": "x@example.org", "event": "deferred", "sg_event_id": "def-1"},
    ]
    assert post(client, "sendgrid", events).status_code == 200
    assert state(unsubscriber) == (False, True, [("opted_out", "")])
    assert state(dropped) == (True, False, [("bounced", "hard")])
    assert BounceEvent.objects.count() == 2


def test_system_check_warns_when_an_esp_sends_without_a_webhook_secret() -> None:
    from bounces.checks import webhook_secret_for_esp

    esp = "anymail.backends.postmark.EmailBackend"
    with override_settings(EMAIL_BACKEND=esp, ANYMAIL={}):
        assert [w.id for w in webhook_secret_for_esp()] == ["bounces.W001"]
    with override_settings(EMAIL_BACKEND=esp, ANYMAIL={"WEBHOOK_SECRET": SECRET}):
        assert webhook_secret_for_esp() == []
    with override_settings(EMAIL_BACKEND="massmail.outbox.EmailBackend", ANYMAIL={}):
        assert webhook_secret_for_esp() == []
