"""Saved segments: a named filter over one target type, synced into a target list.

A segment's conditions become one Q object; syncing is an INSERT ... SELECT of the
filtered records (and, in replace mode, a DELETE of members no longer matching),
so its cost does not depend on a Python loop. A segment with a schedule owns a
django-celery-beat PeriodicTask that calls targets.tasks.sync_segment.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from targets.membership import add_selection, keep_only_selection
from targets.models import RecordEmailAddress, Segment, SegmentCondition

Op = SegmentCondition.Operator
EMAIL = "email"
SYNC_TASK = "targets.tasks.sync_segment"
TEXT_FIELDS = (models.CharField, models.TextField)


@dataclass(frozen=True)
class SyncResult:
    added: int
    removed: int


def resolve_field(model: type[models.Model], path: str) -> models.Field:
    """The model field a condition path ("country", "account__industry") names."""
    current, field = model, None
    for part in path.split("__"):
        if current is None:
            raise ValidationError(f"{path!r}: {field.name} has no fields to follow.")
        try:
            field = current._meta.get_field(part)
        except FieldDoesNotExist:
            raise ValidationError(f"{current.__name__} has no field {part!r}.") from None
        if not field.concrete or field.many_to_many or field.one_to_many:
            raise ValidationError(f"{path!r}: segments can only use a record's own fields.")
        current = field.related_model
    return field


def condition_q(model: type[models.Model], field: str, operator: str, value: str) -> Q:
    """The filter for one condition; ValidationError if it does not fit the field."""
    if field == EMAIL:
        return _address_q(model, operator, value)
    model_field = resolve_field(model, field)
    if operator in (Op.EMPTY, Op.NOT_EMPTY):
        empty = Q(**{f"{field}__isnull": True})
        if isinstance(model_field, TEXT_FIELDS):
            empty |= Q(**{field: ""})
        return empty if operator == Op.EMPTY else ~empty
    if operator in (Op.BEFORE, Op.AFTER):
        return _date_q(model_field, field, operator, value)
    text = isinstance(model_field, TEXT_FIELDS)
    if operator == Op.CONTAINS:
        if not text:
            raise ValidationError(f"{field!r} is not a text field: use equals or in.")
        return Q(**{f"{field}__icontains": value})
    if operator == Op.EQUALS:
        return Q(**{f"{field}__iexact" if text else field: _typed(model_field, value)})
    if operator == Op.IN:
        values = [_typed(model_field, v.strip()) for v in value.split(",") if v.strip()]
        if not values:
            raise ValidationError("Give the values separated by commas.")
        if text:  # like equals, ignore case
            return reduce(or_, (Q(**{f"{field}__iexact": v}) for v in values))
        return Q(**{f"{field}__in": values})
    raise ValidationError(f"Unknown operator {operator!r}.")


def _typed(model_field: models.Field, value: str):
    target = model_field.target_field if model_field.is_relation else model_field
    if isinstance(target, models.BooleanField):
        return _boolean(value)
    try:
        return target.to_python(value)
    except ValidationError as error:
        message = f"{value!r} does not fit {model_field.name}: {error.messages[0]}"
        raise ValidationError(message) from None


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "y"}:
        return True
    if lowered in {"0", "false", "no", "n"}:
        return False
    raise ValidationError(f"{value!r} is not yes or no.")


def _date_q(model_field: models.Field, field: str, operator: str, value: str) -> Q:
    if not isinstance(model_field, models.DateField):  # DateTimeField is a DateField
        raise ValidationError(f"before/after need a date field; {field!r} is not one.")
    try:
        day = datetime.date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"{value!r} is not a date (YYYY-MM-DD).") from None
    if operator == Op.AFTER:
        day += datetime.timedelta(days=1)  # "after 1 May" starts on 2 May
    bound = day
    if isinstance(model_field, models.DateTimeField):
        bound = timezone.make_aware(datetime.datetime.combine(day, datetime.time()))
    return Q(**{f"{field}__lt" if operator == Op.BEFORE else f"{field}__gte": bound})


def _address_q(model: type[models.Model], operator: str, value: str) -> Q:
    """Conditions on the primary address: a correlated EXISTS on the address links."""
    links = RecordEmailAddress.objects.filter(
        content_type=ContentType.objects.get_for_model(model),
        object_id=OuterRef("pk"),
        primary=True,
    )
    value = value.strip().lower()
    if operator in (Op.EMPTY, Op.NOT_EMPTY):
        return ~Q(Exists(links)) if operator == Op.EMPTY else Q(Exists(links))
    lookups = {
        Op.EQUALS: {"email_address__address": value},
        Op.CONTAINS: {"email_address__address__contains": value},
        Op.IN: {"email_address__address__in": [v.strip() for v in value.split(",") if v]},
    }
    if operator not in lookups:
        raise ValidationError("The address takes equals, contains, in or empty.")
    return Q(Exists(links.filter(**lookups[operator])))


def segment_queryset(segment: Segment) -> models.QuerySet:
    model = segment.target_type.model_class()
    conditions = [
        condition_q(model, c.field.strip(), c.operator, c.value) for c in segment.conditions.all()
    ]
    if not conditions:
        return model.objects.all()
    combined = conditions[0]
    for condition in conditions[1:]:
        both = segment.match == Segment.Match.ALL
        combined = (combined & condition) if both else (combined | condition)
    return model.objects.filter(combined)


@transaction.atomic
def sync_segment(segment: Segment) -> SyncResult:
    """Bring the segment's target list up to date (add, or replace keeping opted-out flags)."""
    if segment.target_list is None:
        raise ValidationError(f"Segment {segment} has no target list to sync into.")
    queryset = segment_queryset(segment)
    removed = 0
    if segment.sync_mode == Segment.SyncMode.REPLACE:
        removed = keep_only_selection(segment.target_list, queryset)
    added = add_selection(segment.target_list, queryset)
    Segment.objects.filter(pk=segment.pk).update(
        last_synced_at=timezone.now(), last_sync_added=added, last_sync_removed=removed
    )
    return SyncResult(added, removed)


def schedule_segment(segment: Segment) -> PeriodicTask | None:
    """Create, update or delete the segment's PeriodicTask to match its schedule."""
    task = segment.periodic_task
    if segment.schedule is None or segment.target_list is None:
        if task is not None:
            Segment.objects.filter(pk=segment.pk).update(periodic_task=None)
            task.delete()
            segment.periodic_task = None
        return None
    name = f"Sync segment #{segment.pk}"
    # A stale instance may not know its task: find it by its unique name.
    task = task or PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    task.task = SYNC_TASK
    task.args = json.dumps([segment.pk])
    task.crontab = segment.schedule
    task.interval = None
    task.enabled = True
    task.description = f"Sync segment {segment.name!r} into {segment.target_list}"
    task.save()
    if segment.periodic_task_id != task.pk:
        Segment.objects.filter(pk=segment.pk).update(periodic_task=task)
        segment.periodic_task = task
    return task


def unschedule_segment(segment: Segment) -> None:
    if segment.periodic_task_id:
        PeriodicTask.objects.filter(pk=segment.periodic_task_id).delete()
