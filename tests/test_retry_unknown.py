"""Retry of Delivery unknown items: the delivered ones are Sent, the rest are counted first."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from bounces.classify import SOFT, Report, Verdict
from bounces.effects import apply_report
from campaigns.models import CampaignLogRecord
from massmail.models import MassEmail, QueueItem
from massmail.sending import INTERRUPTED, tick
from tests.fixtures.sending import make_queued_mass_email
from tracking.models import Hit

pytestmark = pytest.mark.django_db

Status = QueueItem.Status


@pytest.fixture
def unknown_items(outbound_unlimited):
    """Four items a dead worker left unknown: one opened, one bounced later, two silent."""
    mass_email = make_queued_mass_email(5)
    items = list(mass_email.queue_items.select_related("email_address").order_by("id"))
    claimed_at = timezone.now()
    QueueItem.objects.filter(pk__in=[i.pk for i in items[:4]]).update(
        status=Status.UNKNOWN, last_error=INTERRUPTED, claimed_at=claimed_at, claimed_by="dead"
    )
    QueueItem.objects.filter(pk=items[4].pk).update(status=Status.SENT, sent_at=claimed_at)
    MassEmail.objects.filter(pk=mass_email.pk).update(status=MassEmail.Status.COMPLETE)
    Hit.objects.create(queue_item=items[0], kind=Hit.Kind.OPEN, at=timezone.now(), method="GET")
    notice = Verdict(
        address=items[1].email_address.address, verdict=SOFT, status="4.2.2", reason="full"
    )
    apply_report(
        Report(recipients=[notice], queue_item_id=str(items[1].uid)),
        source="imap",
        event_key="imap:1",
    )
    return mass_email, items


def test_retry_marks_the_known_delivered_sent_and_resends_only_the_others(
    unknown_items, smtp_settings, smtp_sink
):
    mass_email, items = unknown_items
    assert mass_email.queue_items.filter(status=Status.UNKNOWN).retry() == 2
    statuses = list(mass_email.queue_items.order_by("id").values_list("status", flat=True))
    assert statuses == [Status.SENT, Status.SENT, Status.PENDING, Status.PENDING, Status.SENT]
    settled = QueueItem.objects.get(pk=items[0].pk)
    assert settled.sent_at == settled.claimed_at  # its share of the cap stays spent
    sent_logs = CampaignLogRecord.objects.filter(action=CampaignLogRecord.Action.SENT)
    assert set(sent_logs.values_list("queue_item_id", flat=True)) == {items[0].pk, items[1].pk}
    assert tick().sent == 2
    assert sorted(smtp_sink.recipients()) == sorted(
        [items[2].email_address.address, items[3].email_address.address]
    )


def test_the_retry_action_says_how_many_may_get_a_second_copy_before_acting(unknown_items, client):
    mass_email, items = unknown_items
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(boss)
    url = reverse("admin:massmail_queueitem_changelist")
    chosen = {"action": "retry_action", "_selected_action": [item.pk for item in items]}
    page = client.post(url, chosen)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="second-copy"><strong>2</strong>' in html
    assert 'id="known-delivered"><strong>1</strong>' not in html
    assert 'id="known-delivered"><strong>2</strong>' in html
    # Nothing changed yet.
    assert mass_email.queue_items.filter(status=Status.UNKNOWN).count() == 4
    client.post(url, {**chosen, "confirm": "yes"})
    statuses = list(mass_email.queue_items.order_by("id").values_list("status", flat=True))
    assert statuses == [Status.SENT, Status.SENT, Status.PENDING, Status.PENDING, Status.SENT]
