"""The classifier on bounces written here in each MTA's and provider's documented format.

None of these come from a bounce corpus: the replies are the wordings providers
publish in their postmaster pages (Google, Microsoft, Yahoo/AOL, GMX, La Poste and
Orange, Broadcom MessageLabs) and the formats the MTAs' documentation and source
print (Postfix, Exim, Sendmail, qmail, PowerMTA, Sun/Oracle Messaging Server,
Domino, Exchange). A rule that only fitted the shared corpus would fail here.
"""

from __future__ import annotations

import pytest

from bounces.classify import Report, classify

RCPT = "gone@example.org"


def dsn(
    diagnostic: str,
    *,
    status: str = "5.0.0",
    action: str = "failed",
    notice: str = "Your message could not be delivered to one or more recipients.",
    extra_fields: str = "",
    reporting: str = "mta.example.net",
) -> bytes:
    """An RFC 3464 report as Postfix, Sendmail, Exchange, Gmail or PowerMTA send it."""
    return f"""Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@{reporting}>
To: news+bounce-q1:sig@massmail.example
Subject: Delivery Status Notification (Failure)
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="R"

--R
Content-Type: text/plain; charset=us-ascii

{notice}

--R
Content-Type: message/delivery-status

Reporting-MTA: dns; {reporting}

Final-Recipient: rfc822; {RCPT}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {diagnostic}
{extra_fields}
--R
Content-Type: text/rfc822-headers

From: news@massmail.example
To: {RCPT}
Subject: Spring offers
Message-ID: <q1@massmail.example>

--R--
""".encode()


def text_bounce(body: str, *, subject: str = "Undelivered Mail", sender: str = "") -> bytes:
    """A bounce with no delivery-status part: Exim, qmail, old Sendmail, gateways."""
    sender = sender or "Mail Delivery System <Mailer-Daemon@mx.example.net>"
    return f"""Return-Path: <>
From: {sender}
To: news@massmail.example
Subject: {subject}
Auto-Submitted: auto-replied

{body}
------ This is a copy of the message, including all the headers. ------

From: news@massmail.example
To: {RCPT}
Subject: Spring offers
Message-ID: <q1@massmail.example>

Hello
""".encode()


def judged(raw: bytes) -> tuple[str, str, str]:
    report = classify(raw)
    assert len(report.recipients) == 1, report.recipients
    verdict = report.recipients[0]
    return verdict.address, verdict.verdict, verdict.reason


# (status, Diagnostic-Code, verdict, reason): the providers' own published replies.
PROVIDER_REPLIES = [
    # Google Workspace / Gmail
    (
        "5.1.1",
        "550-5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces.",
        "hard",
        "user unknown",
    ),
    (
        "5.2.1",
        "550 5.2.1 The email account that you tried to reach is disabled.",
        "hard",
        "mailbox disabled",
    ),
    (
        "5.0.0",
        "550 5.2.1 The email account that you tried to reach is disabled. 2adb3069b0e04-5",
        "hard",
        "mailbox disabled",
    ),
    (
        "5.2.2",
        "552-5.2.2 The email account that you tried to reach is over quota.",
        "soft",
        "mailbox full",
    ),
    (
        "5.2.1",
        "550 5.2.1 The user you are trying to contact is receiving mail at a rate that "
        "prevents additional messages from being delivered.",
        "soft",
        "rate limited",
    ),
    (
        "5.7.26",
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. "
        "Gmail requires all senders to authenticate with either SPF or DKIM.",
        "soft",
        "authentication",
    ),
    (
        "5.7.1",
        "550-5.7.1 [192.0.2.1] Our system has detected that this message is likely "
        "unsolicited mail. To reduce the amount of spam sent to Gmail, this message has "
        "been blocked.",
        "soft",
        "content rejected",
    ),
    # Microsoft: Outlook.com / Hotmail and Exchange Online
    (
        "5.5.0",
        "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
        "[DM6NAM12FT014.eop-nam12.prod.protection.outlook.com]",
        "hard",
        "user unknown",
    ),
    (
        "5.0.0",
        "550 Requested action not taken: mailbox unavailable (-2146233088:1D80:-2147467259)",
        "hard",
        "user unknown",
    ),
    (
        "5.1.10",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient gone@example.org not found by "
        "SMTP address lookup",
        "hard",
        "user unknown",
    ),
    (
        "5.7.1",
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact "
        "your Internet service provider since part of their network is on our block list "
        "(S3150).",
        "soft",
        "policy",
    ),
    (
        "5.7.1",
        "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus.",
        "soft",
        "policy",
    ),
    # Yahoo and AOL
    (
        "5.0.0",
        "554 delivery error: dd This user doesn't have a yahoo.com account "
        "(gone@example.org) [0] - mta1234.mail.ne1.yahoo.com",
        "hard",
        "user unknown",
    ),
    (
        "5.0.0",
        "554 delivery error: dd Sorry your message to gone@example.org cannot be "
        "delivered. This mailbox is disabled (554.30). - mta1010.mail.gq1.yahoo.com",
        "hard",
        "mailbox disabled",
    ),
    (
        "4.7.0",
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
        "volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
        "soft",
        "rate limited",
    ),
    (
        "5.1.1",
        "550 5.1.1 <gone@example.org>: Recipient address rejected: aol.com",
        "hard",
        "user unknown",
    ),
    (
        "5.2.1",
        "521 5.2.1 : AOL will not accept delivery of this message.",
        "soft",
        "policy",
    ),
    # GMX / Web.de
    (
        "5.5.0",
        "550 5.5.0 Requested action not taken: mailbox unavailable",
        "hard",
        "user unknown",
    ),
    (
        "5.0.0",
        "550 Requested action not taken: mailbox unavailable / invalid DNS MX or A/AAAA "
        "resource record",
        "soft",
        "content rejected",
    ),
    # La Poste and Orange
    (
        "5.5.0",
        "550 5.5.0 Adresse destinataire invalide. Invalid recipient. LPN007_416",
        "hard",
        "user unknown",
    ),
    (
        "5.1.1",
        "550 5.1.1 Adresse d au moins un destinataire invalide. Invalid recipient. OFR_416",
        "hard",
        "user unknown",
    ),
    (
        "5.2.2",
        "552 5.2.2 Boite du destinataire pleine. Recipient mailbox full. LPN003_409",
        "soft",
        "mailbox full",
    ),
    (
        "5.0.0",
        "550 mwinf5c10 ME Adresse IP source bloquee pour cause de spam. Blocked for spam. "
        "OFR006_102",
        "soft",
        "content rejected",
    ),
    # Broadcom (Symantec) MessageLabs
    ("5.0.0", "550 Invalid recipient <gone@example.org> (#5.1.1)", "hard", "user unknown"),
    (
        "5.0.0",
        "553-you are trying to use me [server-4.tower-1.messagelabs.com] as a relay, but I "
        "have not been configured to let you do this.",
        "soft",
        "policy",
    ),
    # Sun / Oracle Communications Messaging Server
    ("5.1.1", "550 5.1.1 unknown or illegal alias: gone@example.org", "hard", "user unknown"),
    ("5.0.0", "550 5.0.0 unknown or illegal alias: gone@example.org", "hard", "user unknown"),
    (
        "5.2.1",
        "550 5.2.1 Mailbox disabled, not accepting messages",
        "hard",
        "mailbox disabled",
    ),
    # Postfix and Sendmail as remote servers
    (
        "5.1.1",
        "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown in local "
        "recipient table",
        "hard",
        "user unknown",
    ),
    (
        "5.0.0",
        "550 <gone@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        "hard",
        "user unknown",
    ),
    (
        # Exchange Online's directory-based edge blocking: no such address in the tenant.
        "5.4.1",
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
        "[AM4PR0101MB2210.eurprd01.prod.exchangelabs.com]",
        "hard",
        "user unknown",
    ),
    (
        "5.7.1",
        "554 5.7.1 <gone@example.org>: Recipient address rejected: Access denied, "
        "sending IP is listed by a local blocklist",
        "soft",
        "policy",
    ),
    (
        "5.1.1",
        "550 5.1.1 <gone@example.org>... User unknown; blocked by sender reputation",
        "soft",
        "policy",
    ),
    (
        "5.1.0",
        "550 5.1.0 Sender address rejected: domain of sender listed in Spamhaus DBL",
        "soft",
        "policy",
    ),
    (
        "5.3.4",
        "552 5.3.4 Message size exceeds fixed limit",
        "soft",
        "message too big",
    ),
    # Exchange / qmail / Domino wordings under a relaying MTA's generic status
    ("5.0.0", "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", "hard", "user unknown"),
    ("5.0.0", "553 sorry, no mailbox here by that name. (#5.7.1)", "hard", "user unknown"),
    (
        "5.0.0",
        "550 User gone@example.org not listed in Domino Directory",
        "hard",
        "user unknown",
    ),
    # AOL's older reply, and blocklists and greylisting under address statuses
    ("5.0.0", "550 MAILBOX NOT FOUND", "hard", "user unknown"),
    (
        "5.1.1",
        "550 5.1.1 Service unavailable; client [192.0.2.1] blocked using b.barracudacentral.org",
        "soft",
        "policy",
    ),
    ("5.7.1", "550 5.7.1 Greylisted, please try again in 300 seconds", "soft", "policy"),
    (
        "5.7.1",
        "554 5.7.1 Message rejected: prohibited attachment type (.exe)",
        "soft",
        "content rejected",
    ),
    # A bare "User unknown" under a generic status is what content filters answer too.
    ("5.0.0", "550 User unknown", "soft", "content rejected"),
    ("5.0.0", "554 Transaction failed: message content rejected", "soft", "content rejected"),
]


@pytest.mark.parametrize("status, diagnostic, verdict, reason", PROVIDER_REPLIES)
def test_provider_replies_in_a_dsn(status: str, diagnostic: str, verdict: str, reason: str):
    assert judged(dsn(diagnostic, status=status)) == (RCPT, verdict, reason)


def test_powermta_bounce_category_proves_a_generic_refusal() -> None:
    raw = dsn(
        "550 Requested action not taken: user not recognised",
        status="5.0.0",
        reporting="pmta.example.net",
        extra_fields="X-PowerMTA-BounceCategory: bad-mailbox\n",
    )
    assert judged(raw) == (RCPT, "hard", "user unknown")


def test_powermta_spam_category_with_a_user_unknown_text_stays_soft() -> None:
    raw = dsn(
        "550 5.7.1 Message refused by the recipient's filter",
        status="5.7.1",
        reporting="pmta.example.net",
        extra_fields="X-PowerMTA-BounceCategory: spam-related\n",
    )
    assert judged(raw)[1] == "soft"


# ------------------------------------------------------------------------ Exim

EXIM_PREAMBLE = """This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:
"""


@pytest.mark.parametrize(
    "detail, verdict, reason",
    [
        (
            "    SMTP error from remote mail server after RCPT TO:<gone@example.org>:\n"
            "    550 No Such User Here",
            "hard",
            "user unknown",
        ),
        ("    Unrouteable address", "hard", "user unknown"),
        (
            "    all relevant MX records point to non-existent hosts",
            "hard",
            "host unknown",
        ),
        ("    retry timeout exceeded", "soft", "expired"),
        (
            "    SMTP error from remote mail server after RCPT TO:<gone@example.org>:\n"
            "    552 5.2.2 Mailbox quota exceeded",
            "soft",
            "mailbox full",
        ),
        (
            "    SMTP error from remote mail server after end of data:\n"
            "    550 5.7.1 Message rejected due to content restrictions",
            "soft",
            "content rejected",
        ),
        (
            # A filter after DATA wording its refusal as an unknown user.
            "    SMTP error from remote mail server after end of data:\n    550 unknown user",
            "soft",
            "content rejected",
        ),
    ],
)
def test_exim_text_bounces(detail: str, verdict: str, reason: str) -> None:
    body = f"{EXIM_PREAMBLE}\n  {RCPT}\n{detail}\n"
    raw = text_bounce(body, subject="Mail delivery failed: returning message to sender")
    assert judged(raw) == (RCPT, verdict, reason)


# ---------------------------------------------------------------------- Sendmail

SENDMAIL_NOTICE = """The original message was received at Thu, 3 Dec 2026 09:12:01 +0100
from massmail.example [192.0.2.7]

   ----- The following addresses had permanent fatal errors -----
<gone@example.org>
    (reason: {reason})

   ----- Transcript of session follows -----
... while talking to mx.example.org.:
>>> {command}
<<< {reply}
"""


@pytest.mark.parametrize(
    "command, reply, status, verdict, reason",
    [
        (
            "RCPT To:<gone@example.org>",
            "550 5.1.1 <gone@example.org>... User unknown",
            "5.1.1",
            "hard",
            "user unknown",
        ),
        (
            "RCPT To:<gone@example.org>",
            "550 User unknown",
            "5.0.0",
            "hard",
            "user unknown",
        ),
        (
            "DATA",
            "550 5.2.1 <gone@example.org>... User unknown",
            "5.2.1",
            "soft",
            "content rejected",
        ),
        (
            "DATA",
            "554 5.7.1 Rejected: message looks like spam",
            "5.7.1",
            "soft",
            "content rejected",
        ),
    ],
)
def test_sendmail_transcripts(command, reply, status, verdict, reason) -> None:
    notice = SENDMAIL_NOTICE.format(command=command, reply=reply, reason=reply[4:])
    raw = dsn(reply, status=status, notice=notice, reporting="sendmail.example.net")
    assert judged(raw) == (RCPT, verdict, reason)


def test_sendmail_host_unknown() -> None:
    raw = dsn(
        "Host unknown (Name server: example.org: host not found)",
        status="5.1.2",
        reporting="sendmail.example.net",
    )
    assert judged(raw) == (RCPT, "hard", "host unknown")


def test_sendmail_gives_up_after_five_days() -> None:
    raw = dsn(
        "Cannot send message for 5 days",
        status="4.4.7",
        notice="Message could not be delivered for 5 days\nMessage will be deleted from queue",
    )
    assert judged(raw) == (RCPT, "soft", "expired")


# ----------------------------------------------------------------------- Postfix


def test_postfix_name_service_error_is_host_unknown() -> None:
    raw = dsn(
        "X-Postfix; Host or domain name not found. Name service error for "
        "name=example.org type=A: Host not found",
        status="5.4.4",
    )
    assert judged(raw) == (RCPT, "hard", "host unknown")


def test_postfix_local_delivery_program_failure_is_a_system_error() -> None:
    raw = dsn('X-Postfix; Command died with status 1: "/usr/bin/procmail"', status="5.3.0")
    assert judged(raw) == (RCPT, "soft", "system error")


def test_postfix_mail_loop_is_a_system_error() -> None:
    raw = dsn("X-Postfix; mail for example.org loops back to myself", status="5.4.6")
    assert judged(raw) == (RCPT, "soft", "system error")


# ------------------------------------------------------------------------- qmail


def test_qmail_no_mailbox_here() -> None:
    body = f"""Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{RCPT}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.
"""
    raw = text_bounce(body, subject="failure notice", sender="MAILER-DAEMON@mx.example.net")
    assert judged(raw) == (RCPT, "hard", "user unknown")


# ------------------------------------------------------------------------ delays


@pytest.mark.parametrize(
    "diagnostic, status, notice",
    [
        (
            "X-Postfix; connect to mx.example.org[192.0.2.10]:25: Connection timed out",
            "4.4.1",
            "#################################################################\n"
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
            "#################################################################\n"
            "Your message could not be delivered for more than 4 hour(s).\n"
            "It will be retried until it is 5 day(s) old.",
        ),
        (
            "451 4.7.1 Greylisting in action, please come back later",
            "4.7.1",
            "Delivery to the following recipients has been delayed.",
        ),
        (
            "452 4.2.2 The email account that you tried to reach is over quota.",
            "4.2.2",
            "There was a temporary problem delivering your message. Gmail will retry for 46 "
            "more hours. You'll be notified if the delivery fails permanently.",
        ),
    ],
)
def test_delayed_dsns_are_delays_not_bounces(diagnostic: str, status: str, notice: str):
    raw = dsn(diagnostic, status=status, action="delayed", notice=notice)
    assert judged(raw) == (RCPT, "delayed", "delayed")


def test_sendmail_warning_without_a_delivery_status_part_is_a_delay() -> None:
    body = f"""    **********************************************
    **      THIS IS A WARNING MESSAGE ONLY      **
    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **
    **********************************************

The original message was received at Thu, 3 Dec 2026 09:12:01 +0100
from massmail.example [192.0.2.7]

   ----- Transcript of session follows -----
<{RCPT}>... Deferred: Connection refused by mx.example.org.
Warning: message still undelivered after 4 hours
Will keep trying until message is 5 days old
"""
    raw = text_bounce(body, subject="Warning: could not send message for past 4 hours")
    assert judged(raw) == (RCPT, "delayed", "delayed")


def test_final_failure_after_retries_is_not_a_delay() -> None:
    body = f"""{EXIM_PREAMBLE}
  {RCPT}
    retry timeout exceeded
    Delivery was attempted for 5 days and has been given up.
"""
    raw = text_bounce(body, subject="Mail delivery failed: returning message to sender")
    assert judged(raw)[1:] == ("soft", "expired")


# -------------------------------------------------------------------- complaints


def complaint_forward(subject: str, sender: str, notice: str) -> bytes:
    return f"""From: {sender}
To: postmaster@massmail.example
Subject: {subject}
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="C"

--C
Content-Type: text/plain

{notice}

--C
Content-Type: message/rfc822
Content-Disposition: inline

From: news@massmail.example
To: reader@example.org
Subject: Spring offers
Message-ID: <q7@massmail.example>
X-Queue-Item-Id: 6f1c1c1e-7b7f-4c53-9a3d-0f6f1b6b9c11

Hello
--C--
""".encode()


@pytest.mark.parametrize(
    "subject, sender, notice",
    [
        (
            # AOL's feedback loop before ARF.
            "Client TOS Notification",
            "scomp@aol.net",
            "This is an email abuse report for an email message received from IP "
            "192.0.2.7 on Thu, 3 Dec 2026 09:12:01 EST.",
        ),
        (
            "[SpamCop (https://www.spamcop.net/sc?id=z6789) id:7321456789]Spring offers",
            "spamcop report <1234567@reports.spamcop.net>",
            "- SpamCop V6.0.0 -\nThis message is brief for your comfort. Please use links "
            "below for details.",
        ),
        (
            "Abuse report for 192.0.2.7",
            "Abuse Desk <abuse@hosting.example>",
            "One of our customers marked the attached message as spam. Please remove them "
            "from your mailing lists.",
        ),
        (
            "Spam complaint",
            "fbl@isp.example",
            "A recipient reported this message as junk.",
        ),
    ],
)
def test_feedback_loops_that_are_not_arf_are_complaints(subject, sender, notice) -> None:
    report = classify(complaint_forward(subject, sender, notice))
    assert [(v.address, v.verdict) for v in report.recipients] == [
        ("reader@example.org", "complaint")
    ]
    assert report.queue_item_id == "6f1c1c1e-7b7f-4c53-9a3d-0f6f1b6b9c11"


def test_a_filter_bounce_that_says_spam_is_no_complaint() -> None:
    raw = complaint_forward(
        "Undelivered Mail Returned to Sender",
        "MAILER-DAEMON@mx.example.org",
        "Your message to reader@example.org was classified as spam and rejected.",
    )
    assert [v.verdict for v in classify(raw).recipients] != ["complaint"]


def test_a_person_forwarding_a_message_is_no_complaint() -> None:
    raw = complaint_forward(
        "Fwd: Spring offers", "Reader <reader@example.org>", "Have a look at this offer!"
    )
    assert classify(raw).recipients == []


def test_every_format_here_is_read_without_error(caplog) -> None:
    raws = [dsn(d, status=s) for s, d, _, _ in PROVIDER_REPLIES]
    for raw in raws:
        assert isinstance(classify(raw), Report)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
