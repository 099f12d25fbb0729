"""Celery tasks: thin wrappers over massmail.sending, safe to run twice or at once."""

from __future__ import annotations

from celery import shared_task

from massmail import queue, sending, splittests


@shared_task(name="massmail.tasks.send_mass_emails")
def send_mass_emails() -> dict:
    """The scheduled tick: build due queues and send what the hourly cap allows."""
    result = sending.tick()
    return {"sent": result.sent, "failed": result.failed, "claimed": result.claimed}


@shared_task(name="massmail.tasks.build_queue")
def build_queue(mass_email_id: int) -> int | None:
    return queue.build_queue(mass_email_id)


@shared_task(name="massmail.tasks.decide_split_tests")
def decide_split_tests() -> list[int]:
    """The A/B tests' beat job: pick the winners whose wait is over."""
    return splittests.decide_due()
