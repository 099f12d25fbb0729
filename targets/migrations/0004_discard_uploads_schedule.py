"""The daily beat schedule that deletes abandoned import uploads, editable in the admin."""

from django.db import migrations

TASK_NAME = "Discard abandoned import uploads"


def create_schedule(apps, schema_editor) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_day, _ = interval_model.objects.get_or_create(every=1, period="days")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "targets.discard_abandoned_uploads",
            "interval": every_day,
            "description": "Deletes CSV uploads nobody mapped within a week, and stray files.",
        },
    )


def remove_schedule(apps, schema_editor) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("targets", "0003_import_run_lease"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
