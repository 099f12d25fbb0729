"""End to end: a VERP-addressed message refused by the remote server comes back as a
real Postfix DSN in the bounce mailbox, and poll_bounces marks the address invalid."""

from __future__ import annotations

import smtplib
from email import policy
from email.message import EmailMessage

import pytest
from django.core.management import call_command

from bounces.models import GroupEmailAccount, ProcessedMessage
from campaigns.models import CampaignLogRecord
from massmail.verp import verp_address
from targets.models import EmailAddress
from tests.factories import make_contact, make_queue_item

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

BOUNCE_ADDRESS = "bounces@example.test"


def newsletter(item, sender: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Example News <news@example.test>"
    message["To"] = item.email_address.address
    message["Subject"] = "Our November newsletter"
    message["Message-ID"] = f"<{item.uid}@news.example.test>"
    message.set_content("Hello, here is the news.")
    return message.as_bytes(policy=policy.SMTP)


def test_rejected_recipient_comes_back_as_a_dsn_and_marks_the_address_invalid(
    postfix_mta, imap_mailbox, capsys
) -> None:
    postfix_mta.sink.mailbox = imap_mailbox
    GroupEmailAccount.objects.create(
        name="Bounces",
        email_address=BOUNCE_ADDRESS,
        imap_host=imap_mailbox.host,
        imap_port=imap_mailbox.port,
        imap_security="none",
        imap_username=imap_mailbox.username,
        imap_password=imap_mailbox.password,
    )
    dead = make_queue_item(make_contact(email="nouser.reader@remote.example"))
    alive = make_queue_item(make_contact(email="reader@remote.example"))
    already = len(postfix_mta.sink.delivered)

    for item in (dead, alive):
        sender = verp_address(BOUNCE_ADDRESS, item.uid)  # no X-Queue-Item-Id: VERP only
        with smtplib.SMTP(postfix_mta.host, postfix_mta.port, timeout=30) as smtp:
            smtp.sendmail(sender, [item.email_address.address], newsletter(item, sender))

    arrived = postfix_mta.sink.wait_for(lambda: len(postfix_mta.sink.delivered) > already)
    assert arrived, f"no DSN reached the bounce mailbox; Postfix log:\n{postfix_mta.log()}"
    dsn = postfix_mta.sink.delivered[-1]
    assert b"message/delivery-status" in dsn and b"5.1.1" in dsn
    assert postfix_mta.sink.wait_for(
        lambda: any(alive.email_address.address in r for _, r, _ in postfix_mta.sink.relayed)
    )

    call_command("poll_bounces")

    assert "1 bounce(s)" in capsys.readouterr().out
    assert EmailAddress.objects.get(pk=dead.email_address_id).invalid
    assert not EmailAddress.objects.get(pk=alive.email_address_id).invalid
    record = CampaignLogRecord.objects.get(queue_item=dead)
    assert (record.action, record.bounce_type) == ("bounced", "hard")
    assert ProcessedMessage.objects.get().outcome == "bounce"
