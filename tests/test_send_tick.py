"""A tick sends the queue over one SMTP connection, records outcomes, completes the mass email."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection

from campaigns.models import CampaignLogRecord
from massmail.models import MassEmail, QueueItem
from massmail.sending import tick
from targets.models import Contact, EmailAddress
from tests.factories import make_contact, make_mass_email, make_target_list
from tests.fixtures.sending import make_queued_mass_email, set_outbound
from tests.services import require_postgres

pytestmark = pytest.mark.django_db


def test_a_tick_sends_every_item_once_and_completes(smtp_settings, smtp_sink, outbound_unlimited):
    mass_email = make_queued_mass_email(5)
    result = tick()
    assert result.sent == 5
    assert sorted(smtp_sink.recipients()) == sorted(
        mass_email.queue_items.values_list("email_address__address", flat=True)
    )
    items = mass_email.queue_items.all()
    assert {item.status for item in items} == {QueueItem.Status.SENT}
    assert all(item.sent_at and item.message_id for item in items)
    logs = CampaignLogRecord.objects.filter(action=CampaignLogRecord.Action.SENT)
    assert sorted(logs.values_list("queue_item_id", flat=True)) == sorted(i.pk for i in items)
    assert not logs.filter(is_test=True).exists()
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.COMPLETE
    assert tick().sent == 0
    assert len(smtp_sink.received) == 5


def test_the_management_command_runs_a_tick(smtp_settings, smtp_sink, outbound_unlimited, capsys):
    make_queued_mass_email(2)
    call_command("send_mass_emails")
    assert "sent 2" in capsys.readouterr().out
    assert len(smtp_sink.received) == 2


def test_the_command_prints_the_warnings_of_a_mass_email_it_starts(
    smtp_settings, smtp_sink, outbound_unlimited, capsys
):
    set_outbound(site_url="http://news.example.com")
    contact = make_contact("ada@example.org")
    mass_email = make_mass_email(target_lists=[make_target_list(contact)], name="Spring")
    call_command("send_mass_emails")
    err = capsys.readouterr().err
    assert f'warning: mass email {mass_email.pk} "Spring": Links use http://' in err
    assert "without the List-Unsubscribe-Post header" in err
    assert len(smtp_sink.received) == 1
    call_command("send_mass_emails")  # said once, when it started
    assert capsys.readouterr().err == ""


def test_items_are_rechecked_at_send_time(smtp_settings, smtp_sink, outbound_unlimited):
    mass_email = make_queued_mass_email(
        addresses=["ok@example.com", "out@example.com", "bad@example.com", "gone@example.com"]
    )
    EmailAddress.objects.filter(address="out@example.com").update(opt_out=True)
    EmailAddress.objects.filter(address="bad@example.com").update(invalid=True)
    Contact.objects.filter(email_address_links__email_address__address="gone@example.com").delete()
    tick()
    outcome = dict(mass_email.queue_items.values_list("email_address__address", "last_error"))
    assert outcome == {
        "ok@example.com": "",
        "out@example.com": "address opted out",
        "bad@example.com": "address is invalid",
        "gone@example.com": "target deleted",
    }
    assert smtp_sink.recipients() == ["ok@example.com"]
    assert mass_email.queue_items.filter(status=QueueItem.Status.FAILED).count() == 3


def test_max_per_batch_limits_a_tick(smtp_settings, smtp_sink):
    set_outbound(max_per_hour=1000, max_per_batch=3)
    mass_email = make_queued_mass_email(7)
    assert tick().sent == 3
    assert tick().sent == 3
    assert tick().sent == 1
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.COMPLETE


def test_spread_over_the_hour_sends_a_share_per_tick(smtp_settings, smtp_sink):
    # Cap 60 with ticks every 10 minutes: 10 per tick.
    set_outbound(max_per_hour=60, max_per_batch=None, spread_over_hour=True)
    make_queued_mass_email(15)
    assert tick().sent == 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_two_workers_ticking_at_once_send_each_item_once(smtp_settings, smtp_sink):
    require_postgres()  # SQLite ignores row locks
    set_outbound(max_per_hour=150, max_per_batch=None)
    mass_email = make_queued_mass_email(200)
    barrier = threading.Barrier(4)
    results = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(tick())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recipients = smtp_sink.recipients()
    assert len(recipients) == len(set(recipients)) == 150 == sum(r.sent for r in results)
    assert mass_email.queue_items.filter(status=QueueItem.Status.SENT).count() == 150
    assert mass_email.queue_items.filter(status=QueueItem.Status.PENDING).count() == 50


def test_the_group_accounts_smtp_is_used_when_marked_for_mass_email(
    settings, smtp_sink, outbound_unlimited
):
    from bounces.models import GroupEmailAccount

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    account = GroupEmailAccount.objects.create(
        name="Bounces",
        email_address="bounces@example.com",
        handles_bounces=False,
        use_smtp_for_mass_email=True,
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_security="none",
    )
    make_queued_mass_email(2, group_email_account=account)
    assert tick().sent == 2
    assert len(smtp_sink.received) == 2


def test_an_esp_backend_gets_the_queue_item_in_the_metadata(settings, outbound_unlimited):
    from django.core import mail

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    mass_email = make_queued_mass_email(2)
    assert tick().sent == 2
    uids = {str(uid) for uid in mass_email.queue_items.values_list("uid", flat=True)}
    assert {message.metadata["queue_item_id"] for message in mail.outbox} == uids
    assert all(message.anymail_test_params for message in mail.outbox)


def test_an_esp_backend_gets_each_message_rendered_once(settings, outbound_unlimited, monkeypatch):
    from django.core import mail

    from massmail.composition import PreparedMessage

    renders = []
    render = PreparedMessage.render
    monkeypatch.setattr(
        PreparedMessage,
        "render",
        lambda self, item, context: renders.append(item.pk) or render(self, item, context),
    )
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    mass_email = make_queued_mass_email(3)
    assert tick().sent == 3
    assert sorted(renders) == sorted(mass_email.queue_items.values_list("pk", flat=True))
    # The provider's own id is what its webhooks name the message by: it is recorded.
    recorded = set(mass_email.queue_items.values_list("message_id", flat=True))
    assert {str(message.anymail_status.message_id) for message in mail.outbox} == recorded


def test_the_file_outbox_gets_the_composed_bytes(settings, tmp_path, outbound_unlimited):
    settings.EMAIL_BACKEND = "massmail.outbox.EmailBackend"
    settings.EMAIL_OUTBOX_DIR = tmp_path
    mass_email = make_queued_mass_email(2)
    assert tick().sent == 2
    written = sorted(path.read_bytes() for path in tmp_path.glob("*.eml"))
    assert len(written) == 2
    uids = sorted(str(uid) for uid in mass_email.queue_items.values_list("uid", flat=True))
    assert (
        sorted(
            line.split(b": ")[1].decode()
            for raw in written
            for line in raw.split(b"\r\n")
            if line.startswith(b"X-Queue-Item-Id")
        )
        == uids
    )
