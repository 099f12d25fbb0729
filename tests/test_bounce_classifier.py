"""The bounce classifier on small hand-written messages, one behaviour per test."""

from __future__ import annotations

import json

from bounces.classify import Report, classify


def make_dsn(
    *,
    recipient: str = "gone@example.org",
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: "
    "User unknown in virtual mailbox table",
    returned_headers: str = "Message-ID: <orig-1@massmail.example>\nX-Queue-Item-Id: 42\n",
    to: str = "news+bounce-q42:sig@massmail.example",
    envid: str = "",
    notice: str = "I'm sorry to have to inform you that your message could not be delivered.",
) -> bytes:
    envelope = f"Original-Envelope-Id: {envid}\n" if envid else ""
    return f"""Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

{notice}

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
{envelope}
Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: {diagnostic}

--B
Content-Type: text/rfc822-headers

From: news@massmail.example
To: {recipient}
Subject: Spring offers
{returned_headers}
--B--
""".encode()


def only(report: Report):
    assert len(report.recipients) == 1, report.recipients
    return report.recipients[0]


def test_dsn_user_unknown_is_hard() -> None:
    verdict = only(classify(make_dsn()))
    assert (verdict.address, verdict.verdict, verdict.status) == (
        "gone@example.org",
        "hard",
        "5.1.1",
    )
    assert verdict.reason == "user unknown"
    assert "User unknown" in verdict.diagnostic


def test_address_is_lower_cased() -> None:
    assert only(classify(make_dsn(recipient="Gone@Example.ORG"))).address == "gone@example.org"


def test_mailbox_full_is_soft_even_with_permanent_code() -> None:
    raw = make_dsn(status="5.2.2", diagnostic="smtp; 552 5.2.2 Mailbox full")
    verdict = only(classify(raw))
    assert (verdict.verdict, verdict.reason) == ("soft", "mailbox full")


def test_policy_rejection_is_soft() -> None:
    raw = make_dsn(
        status="5.7.1",
        diagnostic="smtp; 550 5.7.1 Service unavailable; "
        "client [192.0.2.1] blocked using zen.example",
    )
    assert only(classify(raw)).verdict == "soft"


def test_dmarc_failure_is_soft() -> None:
    raw = make_dsn(status="5.7.26", diagnostic="smtp; 550 5.7.26 Unauthenticated email (DMARC)")
    verdict = only(classify(raw))
    assert (verdict.verdict, verdict.reason) == ("soft", "authentication")


def test_delayed_action_is_a_delay_not_a_bounce() -> None:
    raw = make_dsn(action="delayed", status="4.4.7", diagnostic="smtp; 451 4.4.7 user unknown")
    verdict = only(classify(raw))
    assert (verdict.verdict, verdict.reason) == ("delayed", "delayed")


def test_delivered_notice_gives_no_verdict() -> None:
    raw = make_dsn(action="delivered", status="2.0.0", diagnostic="smtp; 250 OK")
    assert classify(raw).recipients == []


def test_bare_550_without_proof_that_the_address_is_bad_is_soft() -> None:
    # Filters reject after DATA with "user unknown"; that says nothing final about the address.
    raw = make_dsn(
        status="5.0.0", diagnostic="smtp; 550 Unknown user (in reply to end of DATA command)"
    )
    assert only(classify(raw)).verdict == "soft"


def test_550_user_unknown_refusing_rcpt_to_is_hard() -> None:
    raw = make_dsn(
        status="5.0.0", diagnostic="smtp; 550 No such user (in reply to RCPT TO command)"
    )
    assert only(classify(raw)).verdict == "hard"


def test_host_unknown_is_hard() -> None:
    raw = make_dsn(status="5.1.2", diagnostic="X-Postfix; Host or domain name not found")
    verdict = only(classify(raw))
    assert (verdict.verdict, verdict.reason) == ("hard", "host unknown")


def test_identifiers_are_extracted() -> None:
    report = classify(make_dsn())
    assert report.queue_item_id == "42"
    assert report.verp_token == "q42:sig"
    assert report.message_id == "orig-1@massmail.example"
    assert report.is_auto_reply is False


def test_reference_verp_form_and_envelope_id() -> None:
    assert classify(make_dsn(to="news+bounce-qid-77@massmail.example")).verp_token == "qid-77"
    raw = make_dsn(to="someone@example.net", envid="news+bounce-t9@massmail.example")
    assert classify(raw).verp_token == "t9"


QMAIL = b"""From: MAILER-DAEMON@mx.example.net
To: news+bounce-abc@massmail.example
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<nobody@example.org>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Message-ID: <orig-2@massmail.example>
X-Queue-Item-Id: 7
From: news@massmail.example
To: nobody@example.org
Subject: hello
"""


def test_qmail_text_bounce() -> None:
    report = classify(QMAIL)
    verdict = only(report)
    assert (verdict.address, verdict.verdict, verdict.status) == (
        "nobody@example.org",
        "hard",
        "5.1.1",
    )
    assert (report.queue_item_id, report.message_id, report.verp_token) == (
        "7",
        "orig-2@massmail.example",
        "abc",
    )


ARF = b"""From: feedback@isp.example
To: abuse@massmail.example
Subject: FW: Spring offers
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report.

--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Rcpt-To: <Reader@Example.com>

--F
Content-Type: message/rfc822

From: news@massmail.example
To: reader@example.com
Message-ID: <orig-3@massmail.example>
X-Queue-Item-Id: 99
Subject: Spring offers

Hello
--F--
"""


def test_arf_complaint() -> None:
    report = classify(ARF)
    verdict = only(report)
    assert (verdict.address, verdict.verdict, verdict.reason) == (
        "reader@example.com",
        "complaint",
        "complaint",
    )
    assert report.queue_item_id == "99"
    assert report.message_id == "orig-3@massmail.example"


def test_arf_without_original_rcpt_to_uses_returned_to() -> None:
    raw = ARF.replace(b"Original-Rcpt-To: <Reader@Example.com>\n", b"")
    assert only(classify(raw)).address == "reader@example.com"


AUTO_REPLY = b"""Return-Path: <>
From: Reader <reader@example.com>
To: news@massmail.example
Subject: Out of Office: Spring offers
Auto-Submitted: auto-replied

I am away until Monday and will reply when I am back.
"""


def test_auto_reply_is_not_a_bounce() -> None:
    report = classify(AUTO_REPLY)
    assert report.recipients == []
    assert report.is_auto_reply is True


def test_plain_message_is_not_a_bounce() -> None:
    raw = b"From: a@example.com\nTo: b@example.com\nSubject: hi\n\nSee you at 5, c@example.com\n"
    report = classify(raw)
    assert report.recipients == [] and report.is_auto_reply is False


def test_cr_only_line_ends() -> None:
    verdict = only(classify(make_dsn().replace(b"\n", b"\r")))
    assert (verdict.address, verdict.verdict) == ("gone@example.org", "hard")


def test_crlf_line_ends() -> None:
    assert only(classify(make_dsn().replace(b"\n", b"\r\n"))).verdict == "hard"


def test_malformed_input_never_raises() -> None:
    broken_mime = make_dsn().replace(b'boundary="B"', b'boundary="NOPE"')[:-20]
    bad_charset = QMAIL.replace(
        b"Subject: failure notice\n",
        b"Subject: failure notice\nContent-Type: text/plain; charset=x-no-such-charset\n"
        b"Content-Transfer-Encoding: base64\n",
    )
    samples = [
        b"",
        b"\x00\xff\xfe",
        b"garbage without headers",
        b"Content-Type: multipart/report; boundary=\n\n--\n",
        broken_mime,
        bad_charset,
        "Subject: =?utf-8?b?invalid?=\nFrom: \udcff\n".encode("utf-8", "surrogateescape"),
    ]
    for raw in samples:
        report = classify(raw)
        assert isinstance(report, Report)


def test_empty_input_gives_empty_report() -> None:
    report = classify(b"")
    assert report.recipients == [] and report.queue_item_id is None


def test_x21_user_unknown_needs_proof_of_rcpt_time() -> None:
    # RFC 3463 x.2.1: the mailbox exists but refuses; filters word that "User Unknown".
    bare = make_dsn(status="5.2.1", diagnostic="smtp; 550 5.2.1 <gone@example.org>... User Unknown")
    assert only(classify(bare)).verdict == "soft"
    at_rcpt = make_dsn(
        status="5.2.1",
        diagnostic="smtp; 550 5.2.1 <gone@example.org>... User Unknown "
        "(in reply to RCPT TO command)",
    )
    assert only(classify(at_rcpt)).verdict == "hard"


def test_sendmail_transcript_reply_after_data_is_soft() -> None:
    # The DSN names the recipient one way, the transcript another: the reply text matches.
    transcript = (
        "... while talking to mx.example.org.:\n>>> DATA\n"
        "<<< 550 5.2.1 <filtered@mx.example.org>... User Unknown\n554 5.0.0 Service unavailable"
    )
    raw = make_dsn(
        status="5.2.1",
        diagnostic="smtp; 550 5.2.1 <gone@example.org>... User Unknown",
        notice=transcript,
    )
    assert (only(classify(raw)).verdict, only(classify(raw)).reason) == ("soft", "content rejected")


def test_failed_action_with_address_status_is_hard_even_from_a_4xx_reply() -> None:
    raw = make_dsn(
        status="4.1.1",
        diagnostic="smtp; 450 4.1.1 <gone@example.org>: Recipient address rejected: "
        "User unknown in virtual alias table",
    )
    assert only(classify(raw)).verdict == "hard"


def test_system_not_accepting_mail_is_hard() -> None:
    raw = make_dsn(
        status="5.3.2",
        diagnostic="smtp; 521 5.3.2 <gone@example.org>: System not accepting network messages",
    )
    verdict = only(classify(raw))
    assert (verdict.verdict, verdict.reason) == ("hard", "not accepted")


def test_exchange_online_directory_rejection_is_hard_but_plain_access_denied_is_soft() -> None:
    directory = make_dsn(
        status="5.4.1", diagnostic="smtp; 550 5.4.1 Recipient address rejected: Access denied."
    )
    assert only(classify(directory)).verdict == "hard"
    relay = make_dsn(status="5.7.1", diagnostic="smtp; 554 5.7.1 Relay access denied")
    assert only(classify(relay)).verdict == "soft"
    with_cause = make_dsn(
        status="5.7.1",
        diagnostic="smtp; 550 5.7.1 Recipient address rejected: Access denied, "
        "client IP listed at a DNSBL (in reply to RCPT TO command)",
    )
    assert only(classify(with_cause)).verdict == "soft"


def test_bare_recipient_refusal_at_rcpt_time_is_hard() -> None:
    raw = make_dsn(
        status="5.0.0",
        diagnostic="smtp; 550 <gone@example.org>: Recipient address rejected. "
        "(in reply to RCPT TO command)",
    )
    assert only(classify(raw)).verdict == "hard"


def test_multipart_whose_boundary_never_occurs_is_still_read() -> None:
    raw = make_dsn(status="5.1.1").replace(b"--B\n", b"").replace(b"--B--\n", b"")
    verdict = only(classify(raw))
    assert (verdict.address, verdict.verdict) == ("gone@example.org", "hard")


def sns_ses_bounce() -> bytes:
    # Amazon SNS wraps the SES notification as a JSON string inside its own JSON.
    notification = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bouncedRecipients": [
                {
                    "emailAddress": "gone@example.org",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
    }
    envelope = json.dumps({"Type": "Notification", "Message": json.dumps(notification)}, indent=2)
    headers = (
        "From: SES <no-reply@sns.amazonaws.com>\nTo: bounces@massmail.example\n"
        "Subject: AWS Notification Message\nContent-Type: text/plain; charset=UTF-8\n\n"
    )
    return (headers + envelope + "\n").encode()


def test_ses_notification_delivered_through_sns() -> None:
    verdict = only(classify(sns_ses_bounce()))
    assert (verdict.address, verdict.verdict, verdict.status) == (
        "gone@example.org",
        "hard",
        "5.1.1",
    )


def test_dsn_forwarded_inside_a_notice_is_read() -> None:
    inner = make_dsn().decode()
    raw = f"""From: Mail Delivery Subsystem <MAILER-DAEMON@gw.example.net>
To: news@massmail.example
Subject: Returned mail
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="OUTER"

--OUTER
Content-Type: text/plain

----- The following addresses had permanent delivery errors -----

--OUTER
Content-Type: message/rfc822

{inner}
--OUTER--
""".encode()
    verdict = only(classify(raw))
    assert (verdict.address, verdict.verdict) == ("gone@example.org", "hard")


def test_one_recipient_per_line_gets_its_own_reason() -> None:
    raw = b"""From: MAILER-DAEMON@mx.example.net
To: news@massmail.example
Subject: Delivery status notification: error

An error has occurred while attempting to deliver a message for
the following list of recipients:

full@example.org: 550 5.2.2 <full@example.org>... Mailbox Full
gone@example.org: 550 5.1.1 <gone@example.org>... User Unknown
"""
    verdicts = {v.address: v.verdict for v in classify(raw).recipients}
    assert verdicts == {"full@example.org": "soft", "gone@example.org": "hard"}


def test_gateway_notice_reads_the_attached_transcript() -> None:
    raw = b"""From: postmaster@gw.example.net
To: news@massmail.example
Subject: Mail could not be delivered
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="G"

--G
Content-Type: text/plain

The following mail could not be delivered.
Reason:  Unable to deliver message to <gone@example.org>.

--G
Content-Type: message/rfc822

From: news@massmail.example
To: gone@example.org
Subject: hello

----- Transcript of the session follows -----
>>> RCPT To:<gone@example.org>
<<< 550 5.1.1 <gone@example.org>... Invalid recipient
--G--
"""
    verdict = only(classify(raw))
    assert (verdict.verdict, verdict.status) == ("hard", "5.1.1")


def test_reason_printed_above_a_lone_address_is_used() -> None:
    raw = b"""From: MAILER-DAEMON@mx.example.net
To: news@massmail.example
Subject: Mail delivery failed

The user(s) account is disabled.

<gone@example.org>
"""
    verdict = only(classify(raw))
    assert (verdict.verdict, verdict.reason) == ("hard", "mailbox disabled")


def test_delay_warning_is_soft() -> None:
    raw = b"""From: "Mail Deliver System" <MAILER-DAEMON@mx.example.net>
To: news@massmail.example
Subject: Warning--Could not send mail for past 8.5 hours

---The following addresses had delivery errors---

slow@example.org [Connection timed out]
"""
    assert only(classify(raw)).verdict == "soft"


def test_notice_naming_the_failed_address_is_a_bounce_whatever_its_sender() -> None:
    raw = b"""From: no-reply@isp.example.jp
To: news@massmail.example
Subject: =?UTF-8?B?44Oh44O844Or44Ko44Op44O86YCa55+l?=

Your mail sent on: Thu, 29 Apr 2013 23:45:22 +0900
     Could not be delivered to: <full@example.org>
     As their mailbox is full.
"""
    verdict = only(classify(raw))
    assert (verdict.address, verdict.verdict, verdict.reason) == (
        "full@example.org",
        "soft",
        "mailbox full",
    )
