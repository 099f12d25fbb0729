"""Users are targets too: keep a user's email field linked as their primary address.
Segments keep their django-celery-beat task in step with their schedule."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from targets.models import Segment, set_email_addresses


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def link_user_email(sender, instance, raw: bool = False, update_fields=None, **kwargs) -> None:
    if raw or (update_fields is not None and "email" not in update_fields):
        return
    set_email_addresses(instance, instance.email or None)


@receiver(post_save, sender=Segment)
def schedule_saved_segment(sender, instance: Segment, raw: bool = False, **kwargs) -> None:
    from targets.segments import schedule_segment  # segments imports celery-beat models

    if not raw:
        schedule_segment(instance)


@receiver(post_delete, sender=Segment)
def unschedule_deleted_segment(sender, instance: Segment, **kwargs) -> None:
    from targets.segments import unschedule_segment

    unschedule_segment(instance)
