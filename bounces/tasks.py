"""Celery entry points; the work is in bounces.imap."""

from __future__ import annotations

from celery import shared_task

from bounces.imap import poll_all


@shared_task(name="bounces.poll_bounces", ignore_result=True)
def poll_bounces() -> int:
    """Read every group account's bounce mailbox; safe to run twice (accounts are leased)."""
    return sum(result.bounces for result in poll_all())
