"""The beat schedule that applies the burst rules to recent hits every minute."""

from django.db import migrations

TASK_NAME = "Reclassify hit bursts"


def create_schedule(apps, schema_editor) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = interval_model.objects.get_or_create(every=1, period="minutes")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "tracking.reclassify_bursts",
            "interval": every_minute,
            "description": (
                "Marks as machine the hits of one message that arrived together"
                " (a scanner fetching every link at once)."
            ),
        },
    )


def remove_schedule(apps, schema_editor) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0004_log_hits_without_db_constraints"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
