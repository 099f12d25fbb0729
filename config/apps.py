from django_celery_beat.apps import BeatConfig


class ScheduledJobsConfig(BeatConfig):
    """django-celery-beat's admin, shown to administrators as "Scheduled jobs"."""

    verbose_name = "Scheduled jobs"
