"""The beat schedule that queues drip sequences' due steps every minute, editable in the admin."""

from django.db import migrations

TASK_NAME = "Advance drip sequences"


def create_schedule(apps, schema_editor) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = interval_model.objects.get_or_create(every=1, period="minutes")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "campaigns.tasks.advance_sequences",
            "interval": every_minute,
            "description": "Enrols new list members in sequences and queues the due steps;"
            " the send tick sends them within the caps.",
        },
    )


def remove_schedule(apps, schema_editor) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0007_drip_sequences"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
