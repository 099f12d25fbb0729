"""What a classified bounce does to addresses and the campaign log, from any source."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from bounces.classify import Report, Verdict
from bounces.effects import apply_report, find_queue_item
from bounces.models import BounceEvent, UnmatchedBounce
from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings
from massmail.verp import verp_token
from targets.models import EmailAddress
from tests.factories import make_contact, make_queue_item

pytestmark = pytest.mark.django_db


def report(address: str, verdict: str, status: str = "5.1.1", **ids) -> Report:
    reason = {"hard": "userunknown", "soft": "mailboxfull", "complaint": "abuse"}[verdict]
    return Report(recipients=[Verdict(address, verdict, status, reason)], **ids)


def logs(item, **filters):
    return CampaignLogRecord.objects.filter(queue_item=item, **filters)


def test_hard_bounce_invalidates_the_address_and_logs_once_per_item() -> None:
    item = make_queue_item()
    address = item.email_address.address
    apply_report(report(address, "hard"), source="imap", queue_item=item, event_key="a")
    apply_report(report(address, "hard"), source="imap", queue_item=item, event_key="b")

    item.email_address.refresh_from_db()
    assert item.email_address.invalid and not item.email_address.opt_out
    record = logs(item).get()
    assert (record.action, record.bounce_type) == ("bounced", "hard")
    assert record.campaign_id == item.mass_email.campaign_id
    assert record.mass_email_id == item.mass_email_id
    assert (record.content_type_id, record.object_id) == (item.content_type_id, item.object_id)
    assert record.email_address == address and not record.is_test


def test_queue_item_found_by_header_uid() -> None:
    item = make_queue_item()
    apply_report(report("someone@else.example", "hard", queue_item_id=str(item.uid)), source="imap")
    # The bounce is about the address we sent to, whatever final recipient it names.
    assert EmailAddress.objects.get(pk=item.email_address_id).invalid
    assert logs(item, bounce_type="hard").exists()
    assert not EmailAddress.objects.filter(address="someone@else.example").exists()


def test_queue_item_found_by_verp_token_and_message_id() -> None:
    by_verp = make_queue_item()
    by_mid = make_queue_item(message_id="<abc.123@mail.example.com>")
    assert find_queue_item(report("x@y.example", "hard", verp_token=verp_token(by_verp.uid))) == (
        by_verp
    )
    assert find_queue_item(report("x@y.example", "hard", message_id="abc.123@mail.example.com"))
    assert (
        find_queue_item(report("x@y.example", "hard", message_id="<abc.123@mail.example.com>"))
        == by_mid
    )


def test_forged_verp_token_finds_nothing() -> None:
    item = make_queue_item()
    genuine = verp_token(item.uid)
    uid_part, _, mac = genuine.rpartition("-")
    forged = f"{uid_part}-{'a' * len(mac) if mac != 'a' * len(mac) else 'b' * len(mac)}"
    assert find_queue_item(report("x@y.example", "hard", verp_token=forged)) is None

    apply_report(report("nobody@y.example", "hard", verp_token=forged), source="imap")
    item.email_address.refresh_from_db()
    assert not item.email_address.invalid
    assert not logs(item).exists()


def test_soft_bounce_is_logged_and_leaves_the_address_mailable() -> None:
    item = make_queue_item()
    apply_report(
        report(item.email_address.address, "soft", "4.2.2"), source="imap", queue_item=item
    )
    item.email_address.refresh_from_db()
    assert item.email_address.mailable
    assert logs(item, action="bounced", bounce_type="soft").count() == 1


def test_complaint_opts_out_and_logs_opted_out_once() -> None:
    item = make_queue_item(is_test=True)
    for key in ("arf-1", "arf-2"):
        apply_report(report("", "complaint", ""), source="imap", queue_item=item, event_key=key)
    item.email_address.refresh_from_db()
    assert item.email_address.opt_out and not item.email_address.invalid
    record = logs(item).get()
    assert record.action == "opted_out" and record.is_test


def test_soft_bounce_threshold_counts_events_within_the_window() -> None:
    settings = OutboundSettings.load()
    settings.soft_bounce_threshold, settings.soft_bounce_window_days = 3, 30
    settings.save()
    contact = make_contact(email="flaky@example.org")
    start = timezone.now()

    def soft(day: int, key: str) -> bool:
        with time_machine.travel(start + timedelta(days=day), tick=False):
            item = make_queue_item(contact)
            apply_report(report("flaky@example.org", "soft", "4.2.2"), source="imap",
                         queue_item=item, event_key=key)  # fmt: skip
        return EmailAddress.objects.get(address="flaky@example.org").invalid

    assert not soft(0, "1")
    assert not soft(20, "2")
    assert not soft(20, "2")  # the same event again does not count twice
    assert not soft(35, "3")  # day 0 has left the 30-day window: 2 in window
    assert soft(36, "4")  # days 20, 35, 36


def test_soft_threshold_counts_messages_not_reports() -> None:
    # A delay warning, a second warning and the final expiry of one message are one
    # slow delivery: they are logged once and count once toward the threshold.
    settings = OutboundSettings.load()
    settings.soft_bounce_threshold = 2
    settings.save()
    contact = make_contact()
    item = make_queue_item(contact)
    address = item.email_address.address
    for key, status in (("warn-4h", "4.4.7"), ("warn-1d", "4.4.7"), ("expired", "4.4.7")):
        apply_report(report(address, "soft", status), source="imap", queue_item=item, event_key=key)
    assert not EmailAddress.objects.get(pk=item.email_address_id).invalid
    assert logs(item).count() == 1
    assert BounceEvent.objects.filter(queue_item=item).count() == 3

    second = make_queue_item(contact)
    apply_report(report(address, "soft", "4.2.2"), source="imap", queue_item=second, event_key="z")
    assert EmailAddress.objects.get(pk=item.email_address_id).invalid


def test_soft_reports_without_queue_item_count_one_each() -> None:
    settings = OutboundSettings.load()
    settings.soft_bounce_threshold = 2
    settings.save()
    make_contact(email="slow@example.org")
    apply_report(report("slow@example.org", "soft", "4.2.2"), source="esp:postmark", event_key="a")
    assert not EmailAddress.objects.get(address="slow@example.org").invalid
    apply_report(report("slow@example.org", "soft", "4.2.2"), source="esp:postmark", event_key="b")
    assert EmailAddress.objects.get(address="slow@example.org").invalid


def test_bounce_without_queue_item_applies_to_known_address() -> None:
    make_contact(email="Known@Example.org")
    events = apply_report(report("KNOWN@example.org", "hard"), source="esp:postmark")
    assert EmailAddress.objects.get(address="known@example.org").invalid
    assert events[0].email_address.address == "known@example.org"
    assert not CampaignLogRecord.objects.exists()


def test_unknown_address_is_kept_for_review() -> None:
    apply_report(report("stranger@example.net", "hard"), source="imap", event_key="m1")
    assert not EmailAddress.objects.filter(address="stranger@example.net").exists()
    kept = UnmatchedBounce.objects.get()
    assert (kept.address, kept.verdict, kept.status) == ("stranger@example.net", "hard", "5.1.1")
    assert kept.email_address is None


def test_reapplying_the_same_event_changes_nothing() -> None:
    item = make_queue_item()
    bounce = report(item.email_address.address, "soft", "4.2.2", queue_item_id=str(item.uid))
    first = apply_report(bounce, source="imap", event_key="acct1:7:42")
    again = apply_report(bounce, source="imap", event_key="acct1:7:42")
    assert len(first) == 1 and again == []
    assert BounceEvent.objects.count() == 1
    # Another source with the same key is a different event.
    assert len(apply_report(bounce, source="esp:sendgrid", event_key="acct1:7:42")) == 1


def test_report_without_recipients_does_nothing() -> None:
    item = make_queue_item()
    assert apply_report(Report(recipients=[]), source="imap", queue_item=item) == []
    assert not BounceEvent.objects.exists()


def test_several_verdicts_on_one_item_apply_the_strongest() -> None:
    item = make_queue_item()
    bounce = Report(
        recipients=[
            Verdict("fwd1@elsewhere.example", "soft", "4.2.2", "mailboxfull"),
            Verdict("fwd2@elsewhere.example", "hard", "5.1.1", "userunknown"),
        ]
    )
    apply_report(bounce, source="imap", queue_item=item, event_key="k")
    assert EmailAddress.objects.get(pk=item.email_address_id).invalid
    assert list(logs(item).values_list("bounce_type", flat=True)) == ["hard"]


def test_text_from_strangers_is_stored_safely() -> None:
    item = make_queue_item()
    verdict = Verdict(
        item.email_address.address, "hard", "5.1.1\x00", "user\x00unknown", "x" * 9000
    )
    apply_report(
        Report(recipients=[verdict]), source="imap", queue_item=item, event_key="nul\x00key"
    )
    event = BounceEvent.objects.get()
    assert (event.status, event.reason, event.event_key) == ("5.1.1", "user unknown", "nulkey")
    assert len(event.diagnostic) == 2000
