"""Bounce messages as real MTAs and mailbox providers write them, for the poller tests."""

from __future__ import annotations

from massmail.models import QueueItem
from massmail.verp import verp_address


def returned_headers(item: QueueItem, *, with_queue_header: bool = True) -> str:
    lines = [
        "Return-Path: <bounces@example.test>",
        f"Message-ID: <{item.uid}@news.example.com>",
        "From: Example News <news@example.com>",
        f"To: <{item.email_address.address}>",
        "Subject: Our November newsletter",
        "Date: Wed, 25 Nov 2026 10:00:00 +0000",
    ]
    if with_queue_header:
        lines.append(f"X-Queue-Item-Id: {item.uid}")
    return "\n".join(lines)


def postfix_dsn(
    item: QueueItem,
    *,
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
    to: str = "bounces@example.test",
    with_queue_header: bool = True,
    message_id: str = "",
) -> bytes:
    rcpt = item.email_address.address
    action = "failed" if status.startswith("5") else "delayed"
    message_id = message_id or f"<dsn.{item.uid}.{status}@mta.example.test>"
    return f"""\
Return-Path: <>
Delivered-To: {to}
Message-ID: {message_id}
Date: Wed, 25 Nov 2026 10:00:05 +0000 (UTC)
From: MAILER-DAEMON@mta.example.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="B1"

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mta.example.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{rcpt}>: host mx.example.org[192.0.2.10] said: {diagnostic.format(rcpt=rcpt)[6:]}

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mta.example.test
Arrival-Date: Wed, 25 Nov 2026 10:00:04 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: {diagnostic.format(rcpt=rcpt)}

--B1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{returned_headers(item, with_queue_header=with_queue_header)}

--B1--
""".replace("\n", "\r\n").encode()


def arf_complaint(item: QueueItem, *, message_id: str = "") -> bytes:
    message_id = message_id or f"<arf.{item.uid}@fbl.example.net>"
    return f"""\
From: Feedback Loop <fbl@example.net>
To: abuse@example.com
Message-ID: {message_id}
Subject: Abuse report
Date: Wed, 25 Nov 2026 11:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for an email message received from IP
192.0.2.1 on Wed, 25 Nov 2026 10:00:00 +0000.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <bounces@example.test>
Arrival-Date: Wed, 25 Nov 2026 10:00:00 +0000
Source-IP: 192.0.2.1
Reported-Domain: example.com

--ARF
Content-Type: text/rfc822-headers

{returned_headers(item)}

--ARF--
""".replace("\n", "\r\n").encode()


HUMAN_REPLY = b"""\
From: Jane Reader <jane@example.org>
To: bounces@example.test
Subject: Re: Our November newsletter
Message-ID: <reply.1@example.org>
Date: Wed, 25 Nov 2026 12:00:00 +0000
Content-Type: text/plain; charset=utf-8

Thanks, this was useful. Can you send me the price list too?

Jane
""".replace(b"\n", b"\r\n")

MALFORMED = (
    b"Content-Type: multipart/mixed; boundary=\r\n"
    b"Subject: =?x-unknown?B?////?=\r\n\r\n"
    b"--\r\n\xff\xfe\x00garbage\r\n--\r\n"
)


def verp_dsn(item: QueueItem, bounce_address: str = "bounces@example.test") -> bytes:
    """A DSN found only by its VERP address: the returned headers lost X-Queue-Item-Id."""
    return postfix_dsn(item, to=verp_address(bounce_address, item.uid), with_queue_header=False)
