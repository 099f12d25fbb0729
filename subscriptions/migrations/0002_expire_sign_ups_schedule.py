"""The beat schedule that deletes unconfirmed sign-ups past their time, editable in the admin."""

from django.db import migrations

TASK_NAME = "Delete expired sign-ups"


def create_schedule(apps, schema_editor) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = interval_model.objects.get_or_create(every=1, period="hours")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "subscriptions.delete_expired_sign_ups",
            "interval": hourly,
            "description": "Deletes sign-ups nobody confirmed in time, with their consent records.",
        },
    )


def remove_schedule(apps, schema_editor) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0001_subscription_forms_sign_ups_consent"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
