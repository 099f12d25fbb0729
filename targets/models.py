"""Targets of mass email: shared email addresses, accounts, contacts, leads, target lists.

An address is one row shared by every record that uses it (EspoCRM's model), so
opting out or invalidating it applies to all of them. Records of any registered
target type (see targets.registry) link to addresses through RecordEmailAddress
and join target lists through TargetListMember; both are keyed by content type
and object id so that users and custom models need no column of their own.
"""

from __future__ import annotations

import hashlib

import email_validator
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import Count, Q
from django.utils import timezone


def normalize_address(address: str) -> str:
    return address.strip().lower()


def validate_address(address: str) -> str:
    """The normalised address, or a ValidationError saying what is wrong with it."""
    try:
        result = email_validator.validate_email(address.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as error:
        raise ValidationError(
            f"{address.strip()!r} is not a valid email address: {error}"
        ) from None
    return normalize_address(result.normalized)


class EmailAddressQuerySet(models.QuerySet):
    def for_address(self, address: str) -> EmailAddress:
        obj, _ = self.get_or_create(address=normalize_address(address))
        return obj

    def mailable(self, *, ignore_opt_out: bool = False) -> EmailAddressQuerySet:
        qs = self.filter(invalid=False)
        return qs if ignore_opt_out else qs.filter(opt_out=False)


class EmailAddress(models.Model):
    address = models.CharField(max_length=254, unique=True)
    opt_out = models.BooleanField("opted out", default=False)
    invalid = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EmailAddressQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "email addresses"
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address

    def save(self, *args, **kwargs) -> None:
        self.address = normalize_address(self.address)
        if self._state.adding and Suppression.objects.suppressed([self.address]):
            # An erased person's address comes back opted out, never silently mailable.
            self.opt_out = True
        super().save(*args, **kwargs)

    @property
    def mailable(self) -> bool:
        return not (self.opt_out or self.invalid)


def address_hash(address: str) -> str:
    return hashlib.sha256(normalize_address(address).encode()).hexdigest()


class SuppressionQuerySet(models.QuerySet):
    def suppressed(self, addresses: list[str]) -> set[str]:
        """Those of the addresses whose person was erased (one query)."""
        hashes = {address_hash(a): normalize_address(a) for a in addresses}
        found = self.filter(address_hash__in=hashes).values_list("address_hash", flat=True)
        return {hashes[h] for h in found}


class Suppression(models.Model):
    """What is left of an erased person: a hash of the address, so it never returns silently.

    An address created again for a suppressed hash starts opted out; only the
    person's own confirmed sign-up lifts the suppression.
    """

    address_hash = models.CharField("SHA-256 of the address", max_length=64, unique=True)
    erased_at = models.DateTimeField(default=timezone.now)

    objects = SuppressionQuerySet.as_manager()

    def __str__(self) -> str:
        return f"suppressed {self.address_hash[:12]}..."


class RecordEmailAddress(models.Model):
    """One of a record's addresses; at most one per record is primary."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.BigIntegerField()
    record = GenericForeignKey("content_type", "object_id")
    email_address = models.ForeignKey(
        EmailAddress, on_delete=models.CASCADE, related_name="record_links"
    )
    primary = models.BooleanField(default=False)

    class Meta:
        verbose_name = "record email address"
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "email_address"],
                name="record_email_address_unique",
            ),
            models.UniqueConstraint(
                fields=["content_type", "object_id"],
                condition=Q(primary=True),
                name="record_one_primary_address",
            ),
        ]
        indexes = [models.Index(fields=["email_address", "content_type"])]

    def __str__(self) -> str:
        return f"{self.email_address} ({'primary' if self.primary else 'other'})"


class HasEmailAddresses(models.Model):
    """Gives a target model its shared addresses and a primary one."""

    email_address_links = GenericRelation(RecordEmailAddress, related_query_name="%(class)s")

    class Meta:
        abstract = True

    @property
    def primary_email(self) -> EmailAddress | None:
        return primary_email_of(self)

    @property
    def email(self) -> str:
        address = self.primary_email
        return address.address if address else ""

    def set_email_addresses(self, primary: str | None, others: list[str] = ()) -> None:
        set_email_addresses(self, primary, others)


def primary_email_of(record: models.Model) -> EmailAddress | None:
    link = (
        RecordEmailAddress.objects.filter(
            content_type=ContentType.objects.get_for_model(record),
            object_id=record.pk,
            primary=True,
        )
        .select_related("email_address")
        .first()
    )
    return link.email_address if link else None


@transaction.atomic
def set_email_addresses(record: models.Model, primary: str | None, others=()) -> None:
    """Make `primary` the record's primary address and `others` its other ones."""
    ct = ContentType.objects.get_for_model(record)
    wanted = [normalize_address(a) for a in ([primary] if primary else []) + list(others) if a]
    links = RecordEmailAddress.objects.filter(content_type=ct, object_id=record.pk)
    links.exclude(email_address__address__in=wanted).delete()
    links.update(primary=False)
    for position, address in enumerate(dict.fromkeys(wanted)):
        email = EmailAddress.objects.for_address(address)
        RecordEmailAddress.objects.update_or_create(
            content_type=ct,
            object_id=record.pk,
            email_address=email,
            defaults={"primary": position == 0 and bool(primary)},
        )


class Account(HasEmailAddresses):
    """A company."""

    name = models.CharField(max_length=200)
    website = models.URLField(blank=True)
    industry = models.CharField(max_length=100, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name


class Person(HasEmailAddresses):
    salutation = models.CharField(max_length=20, blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    title = models.CharField(max_length=100, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class Contact(Person):
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )

    class Meta(Person.Meta):
        indexes = [models.Index(fields=["last_name", "first_name"])]


class Lead(Person):
    class Status(models.TextChoices):
        NEW = "new", "New"
        ASSIGNED = "assigned", "Assigned"
        IN_PROCESS = "in_process", "In Process"
        CONVERTED = "converted", "Converted"
        RECYCLED = "recycled", "Recycled"
        DEAD = "dead", "Dead"

    account_name = models.CharField("company", max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    source = models.CharField(max_length=100, blank=True)
    campaign = models.ForeignKey(
        "campaigns.Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )

    class Meta(Person.Meta):
        indexes = [models.Index(fields=["last_name", "first_name"])]


class TargetListQuerySet(models.QuerySet):
    def with_counts(self) -> TargetListQuerySet:
        return self.annotate(
            entry_count=Count("members"),
            opted_out_count=Count("members", filter=Q(members__opted_out=True)),
        )


class TargetList(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    is_topic = models.BooleanField(
        "a topic on the preference centre",
        default=False,
        help_text="Members see this list on the unsubscribe page and may leave or rejoin it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TargetListQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def add(self, record: models.Model) -> TargetListMember:
        member, _ = TargetListMember.objects.get_or_create(
            target_list=self,
            content_type=ContentType.objects.get_for_model(record),
            object_id=record.pk,
        )
        return member

    def entry_count(self) -> int:
        return self.members.count()

    def opted_out_count(self) -> int:
        return self.members.filter(opted_out=True).count()

    @transaction.atomic
    def duplicate(self, name: str) -> TargetList:
        """A copy holding only the members that are not opted out (the reference's rule)."""
        copy = TargetList.objects.create(name=name, description=self.description)
        table = TargetListMember._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (target_list_id, content_type_id, object_id, opted_out,"
                f" added_at) SELECT %s, content_type_id, object_id, %s, %s FROM {table}"
                " WHERE target_list_id = %s AND NOT opted_out",
                [copy.pk, False, timezone.now(), self.pk],
            )
        return copy


class TargetListMember(models.Model):
    target_list = models.ForeignKey(TargetList, on_delete=models.CASCADE, related_name="members")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.BigIntegerField()
    record = GenericForeignKey("content_type", "object_id")
    opted_out = models.BooleanField(default=False)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "target list member"
        constraints = [
            models.UniqueConstraint(
                fields=["target_list", "content_type", "object_id"],
                name="target_list_member_unique",
            )
        ]
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.content_type.model} #{self.object_id} in {self.target_list}"


class ImportRun(models.Model):
    """One CSV import into a target list; its progress lets a crashed run resume.

    Each batch commits together with `line_done`, so a re-run of the same file
    (same checksum, type, list and mapping) continues after the last committed line.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for mapping"
        RUNNING = "running", "Running"
        FAILED = "failed", "Failed (can resume)"
        DONE = "done", "Done"

    # An admin upload naming a new list creates it when the import starts, so an
    # abandoned upload leaves no empty list behind.
    target_list = models.ForeignKey(
        TargetList, null=True, blank=True, on_delete=models.CASCADE, related_name="import_runs"
    )
    new_list_name = models.CharField(
        max_length=200, blank=True, help_text="The list created when the import starts."
    )
    target_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    file_name = models.CharField(max_length=255)
    file_path = models.CharField(
        max_length=500, blank=True, help_text="Stored upload (admin imports only)."
    )
    checksum = models.CharField(max_length=64, db_index=True)
    encoding = models.CharField(max_length=40, blank=True)
    mapping = models.JSONField(default=dict, help_text="Field name -> CSV column header.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    line_done = models.PositiveIntegerField(
        default=0, help_text="Last file line whose batch is committed."
    )
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first row errors.")
    failure = models.TextField(blank=True)
    # The admin's background dry run: its mapping, progress and report
    # (see targets.importing.preview_stored_upload).
    preview = models.JSONField(default=dict, blank=True, editable=False)
    # Held by the process importing the run (see targets.importing.run_import).
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} into {self.list_name} ({self.get_status_display()})"

    @property
    def list_name(self) -> str:
        return self.target_list.name if self.target_list_id else self.new_list_name


class Segment(models.Model):
    """A saved filter over one target type, synced into a target list."""

    class Match(models.TextChoices):
        ALL = "all", "All conditions (AND)"
        ANY = "any", "Any condition (OR)"

    class SyncMode(models.TextChoices):
        ADD = "add", "Add matching records"
        REPLACE = "replace", "Replace the list's members (keeps opted-out flags)"

    name = models.CharField(max_length=200, unique=True)
    target_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    match = models.CharField(max_length=3, choices=Match.choices, default=Match.ALL)
    target_list = models.ForeignKey(
        TargetList, null=True, blank=True, on_delete=models.SET_NULL, related_name="segments"
    )
    sync_mode = models.CharField(max_length=7, choices=SyncMode.choices, default=SyncMode.ADD)
    schedule = models.ForeignKey(
        "django_celery_beat.CrontabSchedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Sync automatically on this schedule; leave empty to sync on demand only.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_added = models.PositiveIntegerField(default=0, editable=False)
    last_sync_removed = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentCondition(models.Model):
    class Operator(models.TextChoices):
        EQUALS = "equals", "equals"
        CONTAINS = "contains", "contains"
        IN = "in", "is one of (comma-separated)"
        BEFORE = "before", "before (date)"
        AFTER = "after", "after (date)"
        EMPTY = "empty", "is empty"
        NOT_EMPTY = "not_empty", "is not empty"

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="conditions")
    field = models.CharField(
        max_length=100,
        help_text='A field of the target type, e.g. "country", "account__industry", '
        '"created_at", or "email" for the primary address.',
    )
    operator = models.CharField(max_length=10, choices=Operator.choices)
    value = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.field} {self.get_operator_display()} {self.value}".strip()

    def clean(self) -> None:
        from targets.segments import condition_q  # segments builds on these models

        model = self.segment.target_type.model_class() if self.segment.target_type_id else None
        if model is not None and self.field and self.operator:
            try:
                condition_q(model, self.field.strip(), self.operator, self.value)
            except ValidationError as error:
                raise ValidationError({"field": error.messages}) from None
