"""The beat schedule that picks A/B test winners every minute, editable in Scheduled jobs."""

from django.db import migrations

TASK_NAME = "Pick A/B test winners"


def create_schedule(apps, schema_editor) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = interval_model.objects.get_or_create(every=1, period="minutes")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "massmail.tasks.decide_split_tests",
            "interval": every_minute,
            "description": "Picks the winner of each A/B test whose wait is over and gives it"
            " the rest of the queue; the send tick sends it within the caps.",
        },
    )


def remove_schedule(apps, schema_editor) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("massmail", "0009_split_tests"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
