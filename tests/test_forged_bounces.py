"""Forged bounces and complaints: anyone can mail the bounce address, so a report changes
an address only when a message of ours vouches for it (a VERP token whose HMAC verifies,
our X-Queue-Item-Id or Message-ID). Others are held for an administrator to apply.
"""

from __future__ import annotations

import pytest

from bounces import imap
from bounces.classify import Report, Verdict
from bounces.effects import apply_report
from bounces.models import BounceEvent, HeldReport, UnmatchedBounce
from campaigns.models import CampaignLogRecord
from massmail.verp import verp_address
from targets.models import EmailAddress
from tests.bounce_messages import postfix_dsn, verp_dsn
from tests.factories import make_contact, make_group_account, make_queue_item

pytestmark = pytest.mark.django_db

VICTIM = "victim@example.org"


def forged_dsn(address: str, to: str = "bounces@example.test", number: int = 1) -> bytes:
    """A well-formed DSN naming an address, with nothing of ours in it."""
    return f"""\
Return-Path: <>
Delivered-To: {to}
Message-ID: <forged.dsn.{number}@attacker.example>
From: MAILER-DAEMON@attacker.example (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="F"

--F
Content-Type: text/plain

<{address}>: host mx.example.org said: 550 5.1.1 User unknown (in reply to RCPT TO)

--F
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.attacker.example

Final-Recipient: rfc822; {address}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown

--F
Content-Type: text/rfc822-headers

From: Example News <news@example.com>
To: <{address}>
Subject: Our November newsletter
Message-ID: <made-up.1@news.example.com>

--F--
""".replace("\n", "\r\n").encode()


def forged_arf(address: str) -> bytes:
    return f"""\
From: Feedback Loop <fbl@attacker.example>
To: abuse@example.com
Message-ID: <forged.arf.1@attacker.example>
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="A"

--A
Content-Type: text/plain

This is an email abuse report.

--A
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ForgedFBL/1.0
Version: 1
Original-Rcpt-To: {address}

--A
Content-Type: text/rfc822-headers

From: Example News <news@example.com>
To: <{address}>
Subject: Our November newsletter

--A--
""".replace("\n", "\r\n").encode()


def victim() -> EmailAddress:
    make_queue_item(make_contact(email=VICTIM))  # a real subscriber we have mailed
    return EmailAddress.objects.get(address=VICTIM)


def state(address: EmailAddress) -> tuple[bool, bool]:
    address.refresh_from_db()
    return address.invalid, address.opt_out


def test_forged_dsn_and_arf_change_nothing_and_are_held(imap_mailbox) -> None:
    address = victim()
    imap_mailbox.append(forged_dsn(VICTIM))
    imap_mailbox.append(forged_arf(VICTIM))
    # A VERP address whose HMAC does not verify vouches for nothing either.
    genuine = verp_address("bounces@example.test", make_queue_item().uid)
    last = genuine.index("@") - 1
    altered = genuine[:last] + ("y" if genuine[last] == "x" else "x") + "@example.test"
    imap_mailbox.append(forged_dsn(VICTIM, to=altered, number=2))

    result = imap.poll_account(make_group_account(imap_mailbox))

    assert (result.error, result.bounces) == ("", 3)
    assert state(address) == (False, False)
    assert not BounceEvent.objects.filter(email_address=address).exists()
    assert not CampaignLogRecord.objects.exists()
    held = HeldReport.objects.order_by("id")
    assert [(h.address, h.verdict) for h in held] == [
        (VICTIM, "hard"),
        (VICTIM, "complaint"),
        (VICTIM, "hard"),
    ]
    assert all(h.email_address_id == address.pk and h.applied_at is None for h in held)

    again = imap.poll_account(make_group_account(imap_mailbox))  # another account, same messages
    assert again.error == "" and HeldReport.objects.count() == 3  # held once per report


def test_the_apply_action_applies_a_held_report_once(admin_client) -> None:
    address = victim()
    forged = Report([Verdict(VICTIM, "complaint", "", "abuse")])
    apply_report(forged, source="imap", event_key="mid:arf-1")
    held = HeldReport.objects.get()
    listing = admin_client.get("/admin/bounces/heldreport/").content.decode()
    assert VICTIM in listing
    assert admin_client.get(f"/admin/bounces/heldreport/{held.pk}/change/").status_code == 200

    for _ in range(2):
        response = admin_client.post(
            "/admin/bounces/heldreport/",
            {"action": "apply", "_selected_action": [held.pk]},
            follow=True,
        )
    assert "0 held report(s) applied" in response.content.decode()  # the second time

    assert state(address) == (False, True)
    held.refresh_from_db()
    assert held.applied_at is not None
    event = BounceEvent.objects.get(email_address=address)
    assert (event.verdict, event.source, event.event_key) == ("complaint", "imap", "mid:arf-1")


def test_genuine_bounces_still_apply(imap_mailbox) -> None:
    by_verp, by_header, by_message_id = (make_queue_item() for _ in range(3))
    by_message_id.message_id = f"<{by_message_id.uid}@news.example.com>"
    by_message_id.save(update_fields=["message_id"])
    imap_mailbox.append(verp_dsn(by_verp))
    imap_mailbox.append(postfix_dsn(by_header))
    imap_mailbox.append(postfix_dsn(by_message_id, with_queue_header=False))

    result = imap.poll_account(make_group_account(imap_mailbox))

    assert (result.error, result.bounces) == ("", 3)
    for item in (by_verp, by_header, by_message_id):
        assert EmailAddress.objects.get(pk=item.email_address_id).invalid
    assert not HeldReport.objects.exists()


def test_unattributed_reports_for_unknown_addresses_stay_unmatched() -> None:
    apply_report(
        Report([Verdict("stranger@example.net", "hard", "5.1.1", "userunknown")]),
        source="imap",
        event_key="m1",
    )
    assert UnmatchedBounce.objects.get().address == "stranger@example.net"
    assert not HeldReport.objects.exists()


def test_authenticated_provider_events_apply_without_a_queue_item() -> None:
    address = victim()
    report = Report([Verdict(VICTIM, "hard", "5.1.1", "userunknown")])
    apply_report(report, source="esp:postmark", event_key="wh-1")
    assert state(address) == (True, False)
    assert not HeldReport.objects.exists()
