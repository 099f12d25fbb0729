"""The beat schedule that reads bounce mailboxes every minute, editable in the admin."""

from django.db import migrations

TASK_NAME = "Check group email accounts"


def create_schedule(apps, schema_editor) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = interval_model.objects.get_or_create(every=1, period="minutes")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "bounces.poll_bounces",
            "interval": every_minute,
            "description": "Reads bounces and complaints from group email accounts' mailboxes.",
        },
    )


def remove_schedule(apps, schema_editor) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("bounces", "0003_poll_lease"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
