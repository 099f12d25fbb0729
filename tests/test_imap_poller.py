"""The bounce mailbox poller against a real Dovecot server."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bounces import imap
from bounces.models import BounceEvent, GroupEmailAccount, ProcessedMessage, UnmatchedBounce
from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings
from targets.models import EmailAddress
from tests.bounce_messages import (
    HUMAN_REPLY,
    MALFORMED,
    arf_complaint,
    postfix_dsn,
    verp_dsn,
)
from tests.factories import make_contact, make_group_account, make_queue_item

make_account = make_group_account

pytestmark = pytest.mark.django_db

SEEN = b"\\Seen"


def address_state(item) -> tuple[bool, bool]:
    address = EmailAddress.objects.get(pk=item.email_address_id)
    return address.invalid, address.opt_out


def database_state() -> tuple:
    return (
        sorted(EmailAddress.objects.values_list("address", "invalid", "opt_out")),
        sorted(CampaignLogRecord.objects.values_list("queue_item_id", "action", "bounce_type")),
        BounceEvent.objects.count(),
    )


def test_bounces_are_applied_others_left_in_place_and_a_second_poll_changes_nothing(
    imap_mailbox,
) -> None:
    by_header, by_verp, complainer, full = (make_queue_item() for _ in range(4))
    imap_mailbox.append(postfix_dsn(by_header))
    imap_mailbox.append(HUMAN_REPLY)
    imap_mailbox.append(verp_dsn(by_verp))
    imap_mailbox.append(MALFORMED)
    imap_mailbox.append(arf_complaint(complainer))
    imap_mailbox.append(
        postfix_dsn(full, status="5.2.2", diagnostic="smtp; 552 5.2.2 Mailbox full")
    )
    account = make_account(imap_mailbox)

    result = imap.poll_account(account)

    assert (result.error, result.bounces, result.not_bounces, result.failed) == ("", 4, 2, 0)
    assert address_state(by_header) == (True, False)
    assert address_state(by_verp) == (True, False)
    assert address_state(complainer) == (False, True)
    assert address_state(full) == (False, False)
    assert (
        CampaignLogRecord.objects.filter(
            queue_item__in=[by_header, by_verp], action="bounced", bounce_type="hard"
        ).count()
        == 2
    )
    assert CampaignLogRecord.objects.get(queue_item=complainer).action == "opted_out"
    assert CampaignLogRecord.objects.get(queue_item=full).bounce_type == "soft"

    flags = imap_mailbox.messages()
    assert [SEEN in f for f in flags.values()] == [True, False, True, False, True, True]

    account.refresh_from_db()
    assert account.last_error == "" and account.last_polled_at is not None
    assert account.last_uid == max(flags)
    outcomes = dict(ProcessedMessage.objects.values_list("uid", "outcome"))
    assert sorted(outcomes.values()).count("not_bounce") == 2

    before = database_state()
    again = imap.poll_account(account)
    assert (again.bounces, again.not_bounces, again.failed) == (0, 0, 0)
    assert database_state() == before
    assert imap_mailbox.messages() == flags


def test_uidvalidity_change_rereads_but_applies_nothing_twice(imap_mailbox) -> None:
    OutboundSettings.objects.update_or_create(pk=1, defaults={"soft_bounce_threshold": 2})
    item = make_queue_item()
    imap_mailbox.append(postfix_dsn(item, status="4.2.2", diagnostic="smtp; 452 4.2.2 Full"))
    account = make_account(imap_mailbox)
    imap.poll_account(account)
    GroupEmailAccount.objects.filter(pk=account.pk).update(uidvalidity=1)  # server renumbered

    imap.poll_account(account)

    assert BounceEvent.objects.count() == 1
    assert address_state(item) == (False, False)  # one soft bounce, below the threshold


def test_processed_bounces_are_moved_to_a_folder_created_on_demand(imap_mailbox) -> None:
    item = make_queue_item()
    imap_mailbox.append(postfix_dsn(item))
    imap_mailbox.append(HUMAN_REPLY)
    account = make_account(imap_mailbox, after_processing="move", processed_folder="Processed")

    assert imap.poll_account(account).bounces == 1

    assert list(imap_mailbox.messages().values()) == [()]  # the reply stays, untouched
    assert len(imap_mailbox.messages("Processed")) == 1
    assert address_state(item) == (True, False)


def test_one_failing_message_is_recorded_and_skipped(imap_mailbox, monkeypatch) -> None:
    first, second = make_queue_item(), make_queue_item()
    imap_mailbox.append(postfix_dsn(first))
    imap_mailbox.append(postfix_dsn(second))
    real_classify = imap.classify

    def classify_failing_on_first(raw: bytes, **options):
        if str(first.uid).encode() in raw:
            raise RuntimeError("simulated failure")
        return real_classify(raw, **options)

    monkeypatch.setattr(imap, "classify", classify_failing_on_first)
    account = make_account(imap_mailbox)

    result = imap.poll_account(account)

    assert (result.bounces, result.failed, result.error) == (1, 1, "")
    failed = ProcessedMessage.objects.get(outcome="error")
    assert "simulated failure" in failed.error and bytes(failed.raw).startswith(b"Return-Path")
    assert address_state(first) == (False, False)
    assert address_state(second) == (True, False)
    # The failed message stays unread for a person to look at; it is not retried forever.
    assert imap.poll_account(account).failed == 0


def test_bounce_for_an_unknown_address_is_kept_for_review(imap_mailbox) -> None:
    item = make_queue_item(make_contact(email="gone@example.org"))
    raw = postfix_dsn(item, with_queue_header=False)
    item.delete()
    EmailAddress.objects.filter(address="gone@example.org").delete()
    imap_mailbox.append(raw)

    assert imap.poll_account(make_account(imap_mailbox)).bounces == 1
    assert UnmatchedBounce.objects.get().address == "gone@example.org"


def test_wrong_password_is_the_accounts_last_error(imap_mailbox) -> None:
    imap_mailbox.append(HUMAN_REPLY)
    account = make_account(imap_mailbox, imap_password="wrong")

    result = imap.poll_account(account)

    account.refresh_from_db()
    assert "Login" in account.last_error and "failed" in account.last_error
    assert "AUTHENTICATIONFAILED" in account.last_error or "uthentication" in account.last_error
    assert account.last_error_at is not None and result.error == account.last_error
    assert account.poll_lease_until is None  # the next tick may try again
    with pytest.raises(imap.MailboxError, match="failed"):
        imap.check_connection(account)

    account.imap_password = imap_mailbox.password
    account.save()
    assert imap.poll_account(account).error == ""
    account.refresh_from_db()
    assert account.last_error == "" and account.last_error_at is None


def test_unreachable_server_is_reported(imap_mailbox) -> None:
    from tests.services import free_port

    account = make_account(imap_mailbox, imap_port=free_port())
    imap.poll_account(account)
    account.refresh_from_db()
    assert account.last_error.startswith("Cannot connect to 127.0.0.1:")
    assert account.last_polled_at is None


def test_test_connection_reports_the_message_count(imap_mailbox) -> None:
    imap_mailbox.append(HUMAN_REPLY)
    imap_mailbox.append(HUMAN_REPLY)
    text = imap.check_connection(make_account(imap_mailbox))
    assert "holds 2 message(s)" in text
    assert all(SEEN not in f for f in imap_mailbox.messages().values())


def test_poll_bounces_command(imap_mailbox, capsys) -> None:
    item = make_queue_item()
    imap_mailbox.append(postfix_dsn(item))
    make_account(imap_mailbox)
    make_account(imap_mailbox, name="Inactive", active=False, imap_password="wrong")

    call_command("poll_bounces")

    assert "1 bounce(s)" in capsys.readouterr().out
    assert address_state(item) == (True, False)
    make_account(imap_mailbox, name="Broken", imap_password="wrong")
    with pytest.raises(CommandError, match="1 mailbox"):
        call_command("poll_bounces")


def test_a_leased_account_is_not_polled_twice_at_once(imap_mailbox) -> None:
    account = make_account(imap_mailbox)
    assert imap._take_lease(account)
    assert imap.poll_account(account).skipped


def test_admin_test_connection_button_and_last_error(imap_mailbox, admin_client) -> None:
    imap_mailbox.append(HUMAN_REPLY)
    account = make_account(imap_mailbox, imap_password="wrong")
    imap.poll_account(account)
    change_url = f"/admin/bounces/groupemailaccount/{account.pk}/change/"

    page = admin_client.get(change_url).content.decode()
    assert "Test connection" in page and "Last error (" in page and "failed" in page

    test_url = f"/admin/bounces/groupemailaccount/{account.pk}/mailbox/test/"
    failed = admin_client.post(test_url, follow=True).content.decode()
    assert "Login to 127.0.0.1" in failed
    GroupEmailAccount.objects.filter(pk=account.pk).update(imap_password=imap_mailbox.password)
    passed = admin_client.post(test_url, follow=True).content.decode()
    assert "holds 1 message(s)" in passed
    assert admin_client.get(test_url).status_code == 405

    listing = admin_client.post(
        "/admin/bounces/groupemailaccount/",
        {"action": "poll_now", "_selected_action": [account.pk]},
        follow=True,
    ).content.decode()
    assert "0 bounce(s), 1 other message(s) left in place" in listing
    account.refresh_from_db()
    assert account.last_error == ""


def test_admin_lists_unmatched_bounces_and_retries_failed_messages(
    imap_mailbox, admin_client, monkeypatch
) -> None:
    item = make_queue_item()
    imap_mailbox.append(postfix_dsn(item))
    from bounces.effects import apply_report as real_apply

    def broken_apply(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(imap, "apply_report", broken_apply)
    imap.poll_account(make_account(imap_mailbox))
    failed = ProcessedMessage.objects.get(outcome="error")
    monkeypatch.setattr(imap, "apply_report", real_apply)

    response = admin_client.post(
        "/admin/bounces/processedmessage/",
        {"action": "process_again", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert "1 bounce(s), 0 still failing" in response.content.decode()
    failed.refresh_from_db()
    assert failed.outcome == "bounce" and not bytes(failed.raw)
    assert address_state(item) == (True, False)

    from bounces.classify import Report, Verdict

    apply_report_unknown = Report([Verdict("ghost@example.net", "hard", "5.1.1", "userunknown")])
    real_apply(apply_report_unknown, source="imap", event_key="ghost")
    listing = admin_client.get("/admin/bounces/unmatchedbounce/").content.decode()
    assert "ghost@example.net" in listing and item.email_address.address not in listing
    for url in (
        "/admin/bounces/bounceevent/",
        f"/admin/bounces/bounceevent/{BounceEvent.objects.first().pk}/change/",
        "/admin/bounces/processedmessage/",
        f"/admin/bounces/processedmessage/{failed.pk}/change/",
        f"/admin/bounces/unmatchedbounce/{UnmatchedBounce.objects.get().pk}/change/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_beat_checks_group_email_accounts_every_minute() -> None:
    import importlib

    from django.apps import apps
    from django_celery_beat.models import PeriodicTask

    from config.celery import app

    migration = importlib.import_module("bounces.migrations.0004_poll_beat_schedule")
    migration.create_schedule(apps, None)  # what migrate did; the test database may be flushed
    migration.create_schedule(apps, None)
    task = PeriodicTask.objects.get(name="Check group email accounts")
    assert (task.interval.every, task.interval.period, task.enabled) == (1, "minutes", True)
    app.loader.import_default_modules()
    assert task.task in app.tasks


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_polls_on_a_celery_worker(imap_mailbox) -> None:
    import time

    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from tests.services import require_postgres, require_redis

    require_postgres()  # the worker's threads share the database with the test
    item = make_queue_item()
    imap_mailbox.append(postfix_dsn(item))
    make_account(imap_mailbox)
    app.conf.update(broker_url=require_redis(), task_always_eager=False)
    with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False):
        app.send_task("bounces.poll_bounces")  # what beat sends every minute
        deadline = time.monotonic() + 30
        while not EmailAddress.objects.get(pk=item.email_address_id).invalid:
            assert time.monotonic() < deadline, "the worker did not poll the mailbox"
            time.sleep(0.05)  # waiting for the worker, not for a clock


def test_tls_against_a_plain_text_server_is_a_clear_error(imap_mailbox) -> None:
    account = make_account(imap_mailbox, imap_security="tls")
    imap.poll_account(account)
    account.refresh_from_db()
    assert account.last_error.startswith(f"Cannot connect to 127.0.0.1:{imap_mailbox.port}: ")
    assert "SSL" in account.last_error or "ssl" in account.last_error


def test_an_unexpected_failure_is_shown_and_other_accounts_are_still_polled(
    imap_mailbox, monkeypatch
) -> None:
    item = make_queue_item()
    imap_mailbox.append(postfix_dsn(item))
    quirky = make_account(imap_mailbox, name="A quirky server")
    make_account(imap_mailbox, name="B fine server")
    real_new_uids = imap._new_uids

    def new_uids(client, account):
        if account.pk == quirky.pk:
            raise KeyError(b"UIDNEXT")
        return real_new_uids(client, account)

    monkeypatch.setattr(imap, "_new_uids", new_uids)

    results = imap.poll_all()

    assert [bool(r.error) for r in results] == [True, False]
    quirky.refresh_from_db()
    assert quirky.last_error.startswith("Unexpected error") and quirky.poll_lease_until is None
    assert address_state(item) == (True, False)


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_verify_the_servers_certificate(
    imap_mailbox, dovecot_server, monkeypatch, security: str
) -> None:
    port = dovecot_server.tls_port if security == "tls" else dovecot_server.port
    account = make_account(imap_mailbox, imap_security=security, imap_port=port)

    with pytest.raises(imap.MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        imap.check_connection(account)  # a certificate nobody vouches for

    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot_server.ca_file))  # now the CA is trusted
    assert "holds 0 message(s)" in imap.check_connection(account)


def test_mailbox_buttons_need_the_change_permission(imap_mailbox, client) -> None:
    from tests.factories import make_user

    client.force_login(make_user(is_staff=True))
    account = make_account(imap_mailbox)
    response = client.post(f"/admin/bounces/groupemailaccount/{account.pk}/mailbox/poll/")
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.last_polled_at is None


EXIM_DELAY_WARNING = """\
Return-Path: <>
From: Mail Delivery System <Mailer-Daemon@mx.example.test>
To: bounces@example.test
Subject: Warning: message 1tXyZa-000Abc-7Q delayed 24 hours
Auto-Submitted: auto-replied
X-Failed-Recipients: {rcpt}

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.test.

The message identifier is:     1tXyZa-000Abc-7Q
The subject of the message is: Our news

The address to which the message has not yet been delivered is:

  {rcpt}
    host mx.example.org [192.0.2.10]: Connection timed out

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.

------ This is a copy of the message's headers. ------

X-Queue-Item-Id: {uid}
Subject: Our news
"""


def test_delayed_dsn_and_delay_warning_log_no_bounce_and_leave_the_address_valid(
    imap_mailbox,
) -> None:
    """RFC 3464: "delayed" is never final. Only the queue item notes the delay."""
    dsn_delayed, warned = make_queue_item(), make_queue_item()
    imap_mailbox.append(
        postfix_dsn(dsn_delayed, status="4.4.1", diagnostic="smtp; 451 4.4.1 Connection timed out")
    )
    warning = EXIM_DELAY_WARNING.format(rcpt=warned.email_address.address, uid=warned.uid)
    imap_mailbox.append(warning.encode())
    account = make_account(imap_mailbox)

    result = imap.poll_account(account)

    assert (result.error, result.failed) == ("", 0)
    for item in (dsn_delayed, warned):
        assert address_state(item) == (False, False)
        assert not CampaignLogRecord.objects.filter(queue_item=item).exists()
        item.refresh_from_db()
        assert item.last_error.startswith("delivery delayed")
    assert set(BounceEvent.objects.values_list("verdict", flat=True)) == {"delayed"}
    # Many warnings for one slow message never reach the soft-bounce threshold.
    settings = OutboundSettings.load()
    settings.soft_bounce_threshold = 1
    settings.save()
    imap_mailbox.append(warning.replace("24 hours", "48 hours").encode())
    imap.poll_account(account)
    assert address_state(warned) == (False, False)
