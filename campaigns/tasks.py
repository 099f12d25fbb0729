"""Celery tasks: thin wrappers over campaigns.sequences, safe to run twice or at once."""

from __future__ import annotations

from celery import shared_task

from campaigns import sequences


@shared_task(name="campaigns.tasks.advance_sequences")
def advance_sequences() -> dict:
    """The scheduled job: enrol who joined, queue the due steps (the send tick sends them)."""
    result = sequences.advance()
    return {"enrolled": result.enrolled, "queued": result.queued, "stopped": result.stopped}
