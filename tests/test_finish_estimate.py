"""The mass email page's finish estimate (hourly cap, per-tick allowance, schedule), its
counts of pending items held back, and claims a dead worker holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from massmail.dashboard import estimated_finish, progress_of, why_waiting
from massmail.models import QueueItem
from tests.fixtures.sending import make_queued_mass_email, set_outbound, set_send_tick_every

pytestmark = pytest.mark.django_db
FIRST = timezone.now().replace(microsecond=0)


@pytest.fixture(autouse=True)
def every_ten_minutes(db):
    set_send_tick_every(10)


@pytest.mark.parametrize(
    "cap, batch, spread, remaining, after",
    [
        (100, None, False, 80, timedelta(0)),  # within the cap: the first portion
        (100, None, False, 250, timedelta(hours=2)),  # three hourly portions
        (100, 30, False, 80, timedelta(minutes=20)),  # 30 + 30 + 20, a tick apart
        (120, None, True, 60, timedelta(minutes=20)),  # spread: 20 per tick
        (120, None, True, 240, timedelta(minutes=110)),  # 12 ticks of 20
    ],
)
def test_estimated_finish(cap, batch, spread, remaining, after):
    set_outbound(max_per_hour=cap, max_per_batch=batch, spread_over_hour=spread)
    assert estimated_finish(remaining, FIRST) == FIRST + after


def test_the_page_shows_the_estimate_and_why_items_wait(admin_client):
    set_outbound(max_per_hour=2, max_per_batch=None, spread_over_hour=False)
    mass_email = make_queued_mass_email(5)
    items = list(mass_email.queue_items.order_by("pk"))
    QueueItem.objects.filter(pk=items[0].pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5), attempt_count=1, last_error="451"
    )
    # Put back by a domain's pause that has ended: it goes at the next tick, no reason.
    QueueItem.objects.filter(pk=items[1].pk).update(last_error="throttled: 421 slow down")
    progress = progress_of(mass_email)
    assert progress.finish_at == progress.next_portion_at + timedelta(hours=2)
    assert [(w.key, w.count) for w in why_waiting(mass_email)] == [("retrying", 1)]
    html = admin_client.get(f"/admin/massmail/massemail/{mass_email.pk}/change/").content.decode()
    assert 'id="finish-estimate"' in html and "5 to go at the hourly cap" in html
    assert html.count('data-waiting="') == 1
    assert 'data-waiting="retrying">Retrying recipients' in html


def test_claims_of_a_silent_worker_are_said_with_when_they_are_freed(admin_client):
    mass_email = make_queued_mass_email(3)
    now = timezone.now()
    items = list(mass_email.queue_items.order_by("pk"))
    for item, minutes in zip(items, [5, 4, 1], strict=True):
        QueueItem.objects.filter(pk=item.pk).update(
            status=QueueItem.Status.SENDING, claimed_at=now - timedelta(minutes=minutes)
        )
    silent = progress_of(mass_email).silent
    assert silent.count == 2  # the claim a minute old may be a live worker's
    assert silent.freed_at == now - timedelta(minutes=5) + timedelta(minutes=15)
    html = admin_client.get(f"/admin/massmail/massemail/{mass_email.pk}/change/").content.decode()
    assert 'id="silent-claims">2 messages counted as "sending now" were claimed' in html
