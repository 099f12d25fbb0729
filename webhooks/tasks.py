"""Celery task: a thin wrapper over webhooks.delivery, safe to run twice or at once."""

from __future__ import annotations

from celery import shared_task

from webhooks import delivery


@shared_task(name="webhooks.tasks.deliver_webhooks")
def deliver_webhooks() -> dict:
    """The scheduled tick: deliver every due endpoint's pending events."""
    result = delivery.deliver_due()
    return {"delivered": result.delivered, "batches": result.batches, "failures": result.failures}
