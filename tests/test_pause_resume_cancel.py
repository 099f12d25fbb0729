"""Pause keeps the queue and sends nothing; resume continues; cancel cancels what is pending."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from massmail.models import MassEmail, QueueItem
from massmail.sending import tick
from tests.factories import make_campaign, make_contact, make_mass_email, make_target_list
from tests.fixtures.sending import make_queued_mass_email

pytestmark = pytest.mark.django_db

Status = QueueItem.Status


def test_a_paused_mass_email_sends_nothing_and_keeps_its_queue(
    smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(3)
    assert mass_email.pause()
    assert tick().sent == 0
    assert mass_email.queue_items.filter(status=Status.PENDING).count() == 3
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.PAUSED
    assert mass_email.resume()
    assert mass_email.status == MassEmail.Status.IN_PROCESS
    assert tick().sent == 3
    assert len(smtp_sink.received) == 3


def test_pausing_before_the_queue_is_built_resumes_to_pending(outbound_unlimited):
    mass_email = make_mass_email(make_campaign([make_target_list(make_contact())]))
    assert mass_email.pause()
    tick()
    assert not mass_email.queue_items.exists()
    assert mass_email.resume()
    assert mass_email.status == MassEmail.Status.PENDING


def test_cancel_cancels_pending_items(smtp_settings, smtp_sink, outbound_unlimited):
    mass_email = make_queued_mass_email(3)
    assert mass_email.cancel()
    assert set(mass_email.queue_items.values_list("status", flat=True)) == {Status.CANCELED}
    assert tick().sent == 0 and smtp_sink.received == []
    assert not mass_email.resume() and not mass_email.pause()
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.CANCELED


def test_buttons_and_actions_in_the_admin(client, smtp_settings, smtp_sink, outbound_unlimited):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    mass_email = make_queued_mass_email(2)
    change_url = reverse("admin:massmail_massemail_change", args=[mass_email.pk])
    page = client.get(change_url).content.decode()
    assert "2 total" in page and "2 pending" in page and ">Pause</button>" in page
    client.post(reverse("admin:massmail_massemail_status", args=[mass_email.pk, "pause"]))
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.PAUSED
    assert ">Resume</button>" in client.get(change_url).content.decode()
    client.post(
        reverse("admin:massmail_massemail_changelist"),
        {"action": "resume_action", "_selected_action": [mass_email.pk]},
    )
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.IN_PROCESS
    # A GET never changes anything.
    client.get(reverse("admin:massmail_massemail_status", args=[mass_email.pk, "cancel"]))
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.IN_PROCESS
    # Cancel asks first (tests/test_no_unintended_send.py), then acts.
    client.post(reverse("admin:massmail_massemail_status", args=[mass_email.pk, "cancel"]))
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.IN_PROCESS
    client.post(
        reverse("admin:massmail_massemail_status", args=[mass_email.pk, "cancel"]),
        {"confirm": "yes"},
    )
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.CANCELED


def test_retry_puts_unknown_and_failed_items_back(client, outbound_unlimited):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    mass_email = make_queued_mass_email(3)
    items = list(mass_email.queue_items.order_by("id"))
    QueueItem.objects.filter(pk=items[0].pk).update(status=Status.UNKNOWN, last_error="x")
    QueueItem.objects.filter(pk=items[1].pk).update(status=Status.FAILED, attempt_count=3)
    QueueItem.objects.filter(pk=items[2].pk).update(status=Status.SENT)
    MassEmail.objects.filter(pk=mass_email.pk).update(status=MassEmail.Status.COMPLETE)
    client.post(
        reverse("admin:massmail_queueitem_changelist"),
        {
            "action": "retry_action",
            "_selected_action": [item.pk for item in items],
            "confirm": "yes",  # after the page saying what it would do (test_retry_unknown)
        },
    )
    statuses = list(mass_email.queue_items.order_by("id").values_list("status", "attempt_count"))
    assert statuses == [(Status.PENDING, 0), (Status.PENDING, 0), (Status.SENT, 0)]
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.IN_PROCESS
