"""The scheduled job "Deliver webhooks", every 30 seconds, editable in Scheduled jobs."""

from django.db import migrations

TASK = "webhooks.tasks.deliver_webhooks"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(task=TASK).exists():
        return
    every, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    PeriodicTask.objects.create(
        name="Deliver webhooks",
        task=TASK,
        interval=every,
        description="Sends pending webhook events to their endpoints, retrying failed ones "
        "with backoff.",
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0002_event_triggers"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
