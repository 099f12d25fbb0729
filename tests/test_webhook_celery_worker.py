"""A real Celery worker on Redis runs the delivery task: the receiver is down, the task
fails and puts the endpoint off; once it is back, the next runs deliver everything."""

from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from campaigns.models import CampaignLogRecord
from tests.factories import make_contact, make_mass_email
from tests.fixtures.celery_worker import wait_until
from tests.log_factories import log, make_queue_item
from webhooks.delivery import backoff
from webhooks.models import WebhookEndpoint, WebhookEvent
from webhooks.tasks import deliver_webhooks


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_delivery_task_on_a_worker_loses_nothing_while_the_receiver_is_down(
    webhook_receiver,
    celery_worker_on_redis,
):
    endpoint = WebhookEndpoint.objects.create(
        name="CRM", url=webhook_receiver.url, event_types=["sent"]
    )
    mass_email = make_mass_email()
    for _ in range(25):
        log(make_queue_item(mass_email, make_contact()), CampaignLogRecord.Action.SENT)
    webhook_receiver.stop()
    with time_machine.travel(timezone.now(), tick=True) as clock:
        deliver_webhooks.delay()
        wait_until(lambda: WebhookEndpoint.objects.get(pk=endpoint.pk).failures == 1)
        webhook_receiver.start()
        clock.shift(backoff(1))
        for _ in range(2):  # overlapping runs: one holds the endpoint, the other skips it
            deliver_webhooks.delay()
        pending = WebhookEvent.objects.filter(delivered_at__isnull=True)
        wait_until(lambda: not pending.exists())
    ids = [event["id"] for batch in webhook_receiver.accepted() for event in batch.events]
    assert sorted(ids) == sorted(
        str(uid) for uid in WebhookEvent.objects.values_list("uid", flat=True)
    )
    assert len(ids) == 25


@pytest.mark.django_db
def test_the_delivery_is_a_scheduled_job():
    job = PeriodicTask.objects.get(task="webhooks.tasks.deliver_webhooks")
    assert (job.interval.every, job.interval.period) == (30, "seconds") and job.enabled
