"""Celery tasks: thin wrappers over subscriptions.signup, safe to run twice."""

from celery import shared_task

from subscriptions import signup


@shared_task(name="subscriptions.delete_expired_sign_ups")
def delete_expired_sign_ups() -> int:
    return signup.delete_expired()
