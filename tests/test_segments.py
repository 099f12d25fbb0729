"""Saved segments: conditions, AND/OR, preview, set-based sync (add / replace), schedule."""

import datetime
import json

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from targets import tasks
from targets.models import Contact, Lead, Segment, SegmentCondition
from targets.segments import schedule_segment, segment_queryset, sync_segment
from tests.factories import make_account, make_contact, make_lead, make_target_list

pytestmark = pytest.mark.django_db


def make_segment(model=Contact, conditions=(), **overrides) -> Segment:
    segment = Segment.objects.create(
        **{
            "name": f"Segment {Segment.objects.count() + 1}",
            "target_type": ContentType.objects.get_for_model(model),
            **overrides,
        }
    )
    for field, operator, value in conditions:
        SegmentCondition.objects.create(
            segment=segment, field=field, operator=operator, value=value
        )
    return segment


def matching(segment) -> set[int]:
    return set(segment_queryset(segment).values_list("pk", flat=True))


def test_equals_contains_in_and_empty():
    berlin = make_contact(city="Berlin", country="Germany", title="CTO")
    munich = make_contact(city="Munich", country="germany", title="")
    paris = make_contact(city="Paris", country="France", title="Chief Technology Officer")
    assert matching(make_segment(conditions=[("country", "equals", "Germany")])) == {
        berlin.pk,
        munich.pk,
    }
    assert matching(make_segment(conditions=[("title", "contains", "technology")])) == {paris.pk}
    assert matching(make_segment(conditions=[("city", "in", "paris, Munich")])) == {
        munich.pk,
        paris.pk,
    }
    assert matching(make_segment(conditions=[("title", "empty", "")])) == {munich.pk}
    assert matching(make_segment(conditions=[("title", "not_empty", "")])) == {berlin.pk, paris.pk}


def test_and_or():
    a = make_contact(city="Berlin", country="Germany")
    b = make_contact(city="Paris", country="France")
    make_contact(city="Rome", country="Italy")
    conditions = [("city", "equals", "Berlin"), ("country", "equals", "France")]
    assert matching(make_segment(conditions=conditions, match="all")) == set()
    assert matching(make_segment(conditions=conditions, match="any")) == {a.pk, b.pk}


def test_before_and_after_dates():
    with time_machine.travel(datetime.datetime(2025, 1, 10, 12, tzinfo=datetime.UTC)):
        old = make_contact()
    with time_machine.travel(datetime.datetime(2025, 3, 1, 23, 59, tzinfo=datetime.UTC)):
        on_the_day = make_contact()
    with time_machine.travel(datetime.datetime(2025, 3, 2, 0, 1, tzinfo=datetime.UTC)):
        new = make_contact()
    assert matching(make_segment(conditions=[("created_at", "before", "2025-03-01")])) == {old.pk}
    assert matching(make_segment(conditions=[("created_at", "after", "2025-03-01")])) == {new.pk}
    both = [("created_at", "after", "2025-01-10"), ("created_at", "before", "2025-03-02")]
    assert matching(make_segment(conditions=both)) == {on_the_day.pk}


def test_related_fields_and_the_primary_address():
    acme = make_account(industry="Software")
    worker = make_contact(account=acme, email="w@acme.example")
    make_contact(email="other@example.org")
    no_address = make_contact(email=None)
    segment = make_segment(conditions=[("account__industry", "equals", "software")])
    assert matching(segment) == {worker.pk}
    assert matching(make_segment(conditions=[("email", "contains", "@ACME.example")])) == {
        worker.pk
    }
    assert matching(make_segment(conditions=[("email", "empty", "")])) == {no_address.pk}
    assert matching(make_segment(conditions=[("account", "empty", "")])) == set(
        Contact.objects.exclude(pk=worker.pk).values_list("pk", flat=True)
    )


def test_choice_fields_of_leads():
    new = make_lead(status="new")
    make_lead(status="dead")
    assert matching(make_segment(Lead, [("status", "in", "new,assigned")])) == {new.pk}


@pytest.mark.parametrize(
    ("field", "operator", "value", "message"),
    [
        ("shoe_size", "equals", "42", "no field 'shoe_size'"),
        ("created_at", "contains", "2025", "not a text field"),
        ("city", "before", "2025-01-01", "need a date field"),
        ("created_at", "after", "yesterday", "not a date"),
        ("account", "equals", "abc", "does not fit"),
        ("email", "before", "2025-01-01", "equals, contains, in or empty"),
        ("city__name", "equals", "x", "no fields to follow"),
    ],
)
def test_bad_conditions_are_validation_errors(field, operator, value, message):
    segment = make_segment()
    condition = SegmentCondition(segment=segment, field=field, operator=operator, value=value)
    with pytest.raises(ValidationError, match=message):
        condition.full_clean()


def test_sync_add_is_set_based_and_leaves_other_members():
    germans = [make_contact(country="Germany") for _ in range(4)]
    lead = make_lead()
    target_list = make_target_list(lead)
    segment = make_segment(conditions=[("country", "equals", "Germany")], target_list=target_list)
    with CaptureQueriesContext(connection) as queries:
        result = sync_segment(segment)
    assert (result.added, result.removed) == (4, 0)
    writes = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "DELETE"))]
    assert len(writes) == 1
    assert target_list.entry_count() == 5
    germans[0].country = "Austria"
    germans[0].save()
    assert sync_segment(segment).added == 0
    assert target_list.entry_count() == 5  # add mode never removes
    segment.refresh_from_db()
    assert segment.last_synced_at and segment.last_sync_added == 0


def test_sync_replace_keeps_opted_out_flags_of_members_that_stay():
    stays, leaves, joins = (make_contact(country=c) for c in ("Germany", "Germany", "France"))
    lead = make_lead()
    target_list = make_target_list(stays, leaves, lead)
    target_list.members.update(opted_out=True)
    leaves.country = "Spain"
    leaves.save()
    joins.country = "Germany"
    joins.save()
    segment = make_segment(
        conditions=[("country", "equals", "Germany")], target_list=target_list, sync_mode="replace"
    )
    result = sync_segment(segment)
    assert (result.added, result.removed) == (1, 2)  # joins in; leaves and the lead out
    flags = dict(target_list.members.values_list("object_id", "opted_out"))
    assert flags == {stays.pk: True, joins.pk: False}


def test_sync_without_a_list_is_refused():
    with pytest.raises(ValidationError, match="no target list"):
        sync_segment(make_segment())


def test_a_schedule_creates_updates_and_removes_the_periodic_task():
    target_list = make_target_list()
    daily = CrontabSchedule.objects.create(minute="0", hour="6")
    segment = make_segment(target_list=target_list, schedule=daily)  # saving schedules it
    task = PeriodicTask.objects.get(task="targets.tasks.sync_segment")
    assert segment.periodic_task == task
    assert schedule_segment(segment) == task  # idempotent
    assert task.task == "targets.tasks.sync_segment"
    assert json.loads(task.args) == [segment.pk] and task.crontab == daily and task.enabled
    hourly = CrontabSchedule.objects.create(minute="15")
    segment.schedule = hourly
    segment.save()
    assert PeriodicTask.objects.get(pk=task.pk).crontab == hourly
    assert PeriodicTask.objects.filter(task="targets.tasks.sync_segment").count() == 1
    segment.schedule = None
    segment.save()
    assert not PeriodicTask.objects.filter(task="targets.tasks.sync_segment").exists()


def test_saving_a_stale_copy_keeps_one_task():
    segment = make_segment(
        target_list=make_target_list(), schedule=CrontabSchedule.objects.create(minute="0")
    )
    stale = Segment.objects.get(pk=segment.pk)
    stale.periodic_task = None
    stale.save()
    assert PeriodicTask.objects.filter(task="targets.tasks.sync_segment").count() == 1
    assert Segment.objects.get(pk=segment.pk).periodic_task_id is not None


def test_deleting_a_segment_deletes_its_periodic_task():
    segment = make_segment(
        target_list=make_target_list(), schedule=CrontabSchedule.objects.create(minute="0")
    )
    schedule_segment(segment)
    segment.delete()
    assert not PeriodicTask.objects.filter(task="targets.tasks.sync_segment").exists()


def test_the_task_syncs_and_tolerates_a_deleted_segment():
    contact = make_contact(city="Bonn")
    target_list = make_target_list()
    segment = make_segment(conditions=[("city", "equals", "Bonn")], target_list=target_list)
    tasks.sync_segment(segment.pk)
    tasks.sync_segment(segment.pk)  # safe to run twice
    assert list(target_list.members.values_list("object_id", flat=True)) == [contact.pk]
    tasks.sync_segment(segment.pk + 1000)


# The admin: conditions inline, preview count, schedule, Sync now.


def admin_form(segment_name: str, target_list, conditions, **extra) -> dict:
    data = {
        "name": segment_name,
        "target_type": ContentType.objects.get_for_model(Contact).pk,
        "match": "all",
        "target_list": target_list.pk,
        "sync_mode": "add",
        "schedule": "",
        "conditions-TOTAL_FORMS": str(len(conditions)),
        "conditions-INITIAL_FORMS": "0",
        "conditions-MIN_NUM_FORMS": "0",
        "conditions-MAX_NUM_FORMS": "1000",
        **extra,
    }
    for n, (field, operator, value) in enumerate(conditions):
        data.update(
            {
                f"conditions-{n}-field": field,
                f"conditions-{n}-operator": operator,
                f"conditions-{n}-value": value,
            }
        )
    return data


def test_admin_builds_previews_schedules_and_syncs(admin_client):
    for _ in range(3):
        make_contact(country="Germany")
    make_contact(country="France")
    target_list = make_target_list()
    daily = CrontabSchedule.objects.create(minute="0", hour="6")
    response = admin_client.post(
        "/admin/targets/segment/add/",
        admin_form("Germans", target_list, [("country", "equals", "germany")], schedule=daily.pk),
        follow=True,
    )
    assert "Germans: 3 matching record(s)." in response.content.decode()
    segment = Segment.objects.get()
    assert segment.periodic_task.crontab == daily
    change = admin_client.get(f"/admin/targets/segment/{segment.pk}/change/").content.decode()
    assert "Matching records (preview)" in change and ">3<" in change.replace("\n", "")
    admin_client.post(
        "/admin/targets/segment/",
        {"action": "sync_now", "_selected_action": [segment.pk], "index": "0"},
    )
    assert target_list.entry_count() == 3


def test_admin_rejects_a_condition_that_does_not_fit_the_type(admin_client):
    target_list = make_target_list()
    response = admin_client.post(
        "/admin/targets/segment/add/",
        admin_form("Bad", target_list, [("shoe_size", "equals", "42")]),
    )
    assert response.status_code == 200
    assert "has no field" in response.content.decode()
    assert not Segment.objects.exists()


def test_admin_offers_only_target_types():
    from targets.admin import SegmentAdmin

    form_field = SegmentAdmin(Segment, None).formfield_for_foreignkey(
        Segment._meta.get_field("target_type"), None
    )
    models = {ct.model_class() for ct in form_field.queryset}
    assert Contact in models and Segment not in models


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_periodic_task_runs_the_sync_on_a_celery_worker(celery_worker_on_redis):
    import time

    from config.celery import app

    contact = make_contact(city="Bonn")
    target_list = make_target_list()
    segment = make_segment(
        conditions=[("city", "equals", "Bonn")],
        target_list=target_list,
        schedule=CrontabSchedule.objects.create(minute="*/5"),
    )
    task = PeriodicTask.objects.get(pk=Segment.objects.get(pk=segment.pk).periodic_task_id)
    app.send_task(task.task, args=json.loads(task.args))  # what beat sends when it is due
    deadline = time.monotonic() + 30
    while not target_list.members.exists():
        assert time.monotonic() < deadline, "the worker did not sync the segment"
        time.sleep(0.05)
    assert list(target_list.members.values_list("object_id", flat=True)) == [contact.pk]
