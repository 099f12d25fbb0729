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


def newsletter(item, sender: str, *, queue_header: bool = False) -> bytes:
    message = EmailMessage()
    if queue_header:
        message["X-Queue-Item-Id"] = str(item.uid)
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
    dead_no_verp = make_queue_item(make_contact(email="nouser.other@remote.example"))
    alive = make_queue_item(make_contact(email="reader@remote.example"))
    already = len(postfix_mta.sink.delivered)

    sends = [
        (dead, verp_address(BOUNCE_ADDRESS, dead.uid), False),  # found by VERP only
        (dead_no_verp, BOUNCE_ADDRESS, True),  # found by the returned X-Queue-Item-Id only
        (alive, verp_address(BOUNCE_ADDRESS, alive.uid), False),
    ]
    for item, sender, header in sends:
        with smtplib.SMTP(postfix_mta.host, postfix_mta.port, timeout=30) as smtp:
            message = newsletter(item, sender, queue_header=header)
            smtp.sendmail(sender, [item.email_address.address], message)

    arrived = postfix_mta.sink.wait_for(lambda: len(postfix_mta.sink.delivered) >= already + 2)
    assert arrived, f"the DSNs did not reach the bounce mailbox; Postfix log:\n{postfix_mta.log()}"
    dsn = postfix_mta.sink.delivered[-1]
    assert b"message/delivery-status" in dsn and b"5.1.1" in dsn
    assert postfix_mta.sink.wait_for(
        lambda: any(alive.email_address.address in r for _, r, _ in postfix_mta.sink.relayed)
    )

    call_command("poll_bounces")

    assert "2 bounce(s)" in capsys.readouterr().out
    assert EmailAddress.objects.get(pk=dead.email_address_id).invalid
    assert EmailAddress.objects.get(pk=dead_no_verp.email_address_id).invalid
    assert not EmailAddress.objects.get(pk=alive.email_address_id).invalid
    for item in (dead, dead_no_verp):
        record = CampaignLogRecord.objects.get(queue_item=item)
        assert (record.action, record.bounce_type) == ("bounced", "hard")
    assert set(ProcessedMessage.objects.values_list("outcome", flat=True)) == {"bounce"}
