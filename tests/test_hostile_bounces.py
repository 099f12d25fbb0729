"""Bounce mail anyone can send: hostile messages are read in bounded time, never hang the poller.

The bounce address is every message's Return-Path, so a stranger can mail it a notice
built to make the patterns backtrack (long runs without "@", a 400 KB line of "5.",
thousands of parts). Today's figures are in bench/bench_hostile_bounces.py; these tests
only guard against a hang (the old patterns took minutes on each of these).
"""

from __future__ import annotations

import pytest

from bounces import imap
from bounces.classify import LINE_COUNT_LIMIT, PART_COUNT_LIMIT, classify
from bounces.models import ProcessedMessage
from targets.models import EmailAddress
from tests.bounce_messages import HUMAN_REPLY, postfix_dsn
from tests.factories import make_group_account, make_queue_item

SEEN = b"\\Seen"


def text_bounce(body: str, extra_parts: str = "") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        "To: bounces@example.test\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{body}\n{extra_parts}--B--\n"
    ).encode()


def delivery_status(address: str) -> str:
    return (
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {address}\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\n"
    )


HOSTILE_BODIES = {
    "a 400 KB run of local-part characters": "x" * 400_000,
    "a 400 KB line of '5.'": "5." * 200_000,
    "a 400 KB line of '='": "=" * 400_000,
    "400 KB of '<'": "<" * 400_000,
    "15,000 lines of blanks": " \n" * 15_000,
    "'a@' 200,000 times": "a@" * 200_000,
    "20,000 addresses on one line": " ".join(f"u{i}@host{i}.example" for i in range(20_000)),
    "'connect to' 40,000 times": "connect to " * 40_000,
}


@pytest.mark.timeout(60)  # a hang guard: each took minutes before
@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_hostile_notice_text_is_read_and_the_real_report_still_counts(body: str) -> None:
    report = classify(text_bounce(body, delivery_status("gone@example.org")))

    assert report.unreadable == ""
    assert [(v.address, v.verdict) for v in report.recipients] == [("gone@example.org", "hard")]


@pytest.mark.timeout(60)
def test_lines_beyond_the_line_limit_are_not_read() -> None:
    raw = text_bounce(" \n" * 200_000, delivery_status("gone@example.org"))
    assert LINE_COUNT_LIMIT < 200_000

    report = classify(raw)

    assert report.unreadable == "" and report.recipients == []


@pytest.mark.timeout(60)
def test_thousands_of_parts_are_cut_at_the_part_limit() -> None:
    parts = "".join(
        f"--B\nContent-Type: text/plain\n\n{'y' * 5000} <r{i}@x.example>: 550 5.1.1 unknown\n"
        for i in range(2000)
    )
    report = classify(text_bounce("Delivery failed:", parts))

    assert report.unreadable == ""
    assert len(report.recipients) < PART_COUNT_LIMIT


@pytest.mark.timeout(60)
def test_deeply_nested_parts_after_the_report_are_not_parsed() -> None:
    nested = "".join(
        f"Content-Type: multipart/mixed; boundary=N{i}\n\n--N{i}\n" for i in range(5000)
    )
    parts = delivery_status("gone@example.org") + "--B\n" + nested
    report = classify(text_bounce("Delivery failed.", parts))

    assert [(v.address, v.verdict) for v in report.recipients] == [("gone@example.org", "hard")]


def test_a_message_over_its_time_budget_is_unreadable() -> None:
    item_address = "someone@example.org"
    raw = text_bounce("Delivery failed.", delivery_status(item_address))
    assert [v.address for v in classify(raw).recipients] == [item_address]

    report = classify(raw, time_budget=0)

    assert report.recipients == [] and "not read within 0 s" in report.unreadable


@pytest.mark.django_db
@pytest.mark.timeout(120)
def test_the_poller_reads_past_hostile_messages(imap_mailbox) -> None:
    item = make_queue_item()
    for body in ("x" * 400_000, "5." * 200_000, " \n" * 200_000):
        imap_mailbox.append(text_bounce(body))
    imap_mailbox.append(postfix_dsn(item))

    result = imap.poll_account(make_group_account(imap_mailbox))

    assert (result.error, result.bounces, result.not_bounces, result.failed) == ("", 1, 3, 0)
    assert EmailAddress.objects.get(pk=item.email_address_id).invalid


@pytest.mark.django_db
def test_unreadable_messages_are_filed_away_and_never_read_again(imap_mailbox, settings) -> None:
    settings.BOUNCE_TIME_BUDGET_SECONDS = 0
    item = make_queue_item()
    imap_mailbox.append(postfix_dsn(item))
    imap_mailbox.append(HUMAN_REPLY)
    account = make_group_account(imap_mailbox)

    result = imap.poll_account(account)

    assert (result.error, result.unreadable, result.bounces, result.failed) == ("", 2, 0, 0)
    assert "2 unreadable" in str(result)
    records = ProcessedMessage.objects.order_by("uid")
    assert [r.outcome for r in records] == ["unreadable", "unreadable"]
    assert all("not read within" in r.error and not bytes(r.raw) for r in records)
    assert [SEEN in flags for flags in imap_mailbox.messages().values()] == [True, True]
    assert not EmailAddress.objects.get(pk=item.email_address_id).invalid

    settings.BOUNCE_TIME_BUDGET_SECONDS = 10
    again = imap.poll_account(account)
    assert (again.bounces, again.not_bounces, again.unreadable) == (0, 0, 0)
    assert not EmailAddress.objects.get(pk=item.email_address_id).invalid
