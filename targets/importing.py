"""CSV import of records (contacts, leads, accounts, custom types) into a target list.

The file is read as a stream and written in batches. Each batch is one
transaction that also records the last committed line in its ImportRun, so a
crash loses at most the batch in flight and a re-run resumes after it. Records
are matched by their primary address for the type, so importing the same file
twice changes nothing. Writes are set-based per batch (INSERT ... SELECT from a JSON
document on PostgreSQL, bulk_create elsewhere; bulk_update for changed records).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, router, transaction
from django.db.models import F
from django.utils import timezone

from config.leases import Lease
from targets.models import (
    EmailAddress,
    ImportRun,
    RecordEmailAddress,
    Suppression,
    TargetList,
    TargetListMember,
    validate_address,
)
from targets.registry import TargetType, target_type_for

EMAIL = "email"
DELIMITERS = ",;\t|"
HEAD_BYTES = 64 * 1024
KEPT_ERRORS = 1000
# Admin uploads longer than this import, and are previewed, in a Celery task: a web
# request would time out (a 100k-row dry run took 34 s, past gunicorn's 30 s).
INLINE_IMPORT_LINES = 5000
# How long a run stays claimed by the process importing it without progress; each
# committed batch renews the claim, and a crashed process's claim simply runs out.
IMPORT_LEASE = timedelta(minutes=10)
RUN_LEASE = Lease("lease_until", IMPORT_LEASE)
# Header spellings recognised for each field, compared without case, spaces or punctuation,
# most specific first: "Email Address" must win over a postal "Address" column.
SYNONYMS = {
    EMAIL: ("emailaddress", "email", "primaryemail", "mail", "courriel", "address"),
    "first_name": ("firstname", "givenname", "forename", "vorname", "prenom", "first"),
    "last_name": ("lastname", "familyname", "surname", "nachname", "nom", "last"),
    "name": ("companyname", "accountname", "organisation", "organization", "company", "name"),
    "account_name": ("companyname", "accountname", "organisation", "organization", "company"),
    "phone": ("phonenumber", "telephone", "telefon", "phone", "tel"),
    "city": ("city", "town", "stadt", "ville", "ort"),
    "country": ("country", "land", "pays"),
    "website": ("website", "homepage", "web", "url"),
}


@dataclass(frozen=True)
class Hints:
    """How messages name the way to fix a file: command-line options or the page's fields."""

    encoding: str
    address_column: str


COMMAND_LINE = Hints(
    encoding="give the file's encoding (e.g. --encoding cp1252)",
    address_column="(e.g. --map email=COLUMN)",
)
ADMIN_PAGE = Hints(
    encoding='choose the file\'s encoding under "Encoding" (e.g. Windows Western European)',
    address_column='under "Email address"',
)
# BOMs that name their encoding; UTF-32 first, as its little-endian BOM starts like UTF-16's.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class ImportBusy(RuntimeError):
    """Another process is importing this run right now."""


class CsvFileError(ValueError):
    """The file as a whole cannot be imported; nothing was written."""


@dataclass(frozen=True)
class ImportField:
    name: str
    label: str
    required: bool
    max_length: int | None = None
    choices: dict[str, str] | None = None  # lower-cased value or label -> value


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class CsvFile:
    path: Path
    encoding: str
    delimiter: str
    headers: list[str]
    checksum: str
    name: str = ""  # as the person knows it (an admin upload is stored under another name)
    hints: Hints = COMMAND_LINE

    def open_text(self) -> io.TextIOWrapper:
        # surrogateescape keeps undecodable bytes so each bad row can be reported by line.
        return open(self.path, encoding=self.encoding, errors="surrogateescape", newline="")

    def line_count(self) -> int:
        with open(self.path, "rb") as raw:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: raw.read(1 << 20), b""))


REPORT_COUNTS = ("rows", "created", "updated", "unchanged", "error_count", "dry_run")


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    resumed_after_line: int = 0
    dry_run: bool = False

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(error)

    def as_json(self) -> dict:
        return {
            **{name: getattr(self, name) for name in REPORT_COUNTS},
            "errors": [[error.line, error.message] for error in self.errors],
        }

    @classmethod
    def from_json(cls, data: dict) -> ImportReport:
        errors = [RowError(line, message) for line, message in data.get("errors", [])]
        return cls(**{name: data.get(name, 0) for name in REPORT_COUNTS}, errors=errors)


@dataclass
class ValidRow:
    line: int
    address: str
    values: dict[str, str]


def open_csv(
    path: str | Path, encoding: str | None = None, *, name: str = "", hints: Hints = COMMAND_LINE
) -> CsvFile:
    """Check that the file is a CSV file with a header; raise CsvFileError if not.

    `name` is the file's name in messages (default: the file's own); `hints` says
    how messages tell the person to fix the file.
    """
    path = Path(path)
    name = name or path.name
    with open(path, "rb") as raw:
        head = raw.read(HEAD_BYTES)
    if not head.strip():
        raise CsvFileError(f"{name} is empty.")
    # A BOM names the encoding (Excel's "Unicode Text" is UTF-16 with one); in
    # UTF-16 and UTF-32 NUL bytes are text, not a sign of a binary file.
    encoding = _bom_encoding(head) or encoding or "utf-8-sig"
    if _is_wide(encoding):
        head = head[: len(head) - len(head) % 4]  # whole code units only
    elif b"\x00" in head:
        raise CsvFileError(f"{name} is not a CSV file: it contains binary data.")
    first_line = _first_line(head, encoding, name, hints)
    delimiter = max(DELIMITERS, key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","  # one column: valid only if that column is the address (checked later)
    headers = [header.strip() for header in next(csv.reader([first_line], delimiter=delimiter))]
    _check_headers(headers, name)
    return CsvFile(path, encoding, delimiter, headers, _checksum(path), name, hints)


def _bom_encoding(head: bytes) -> str | None:
    return next((encoding for bom, encoding in BOMS if head.startswith(bom)), None)


def _is_wide(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    except LookupError:
        return False


def _first_line(head: bytes, encoding: str, file_name: str, hints: Hints) -> str:
    try:
        text = head.decode(encoding, errors="surrogateescape")
    except LookupError:
        raise CsvFileError(f"Unknown encoding {encoding!r}.") from None
    except UnicodeDecodeError:  # wide encodings cannot keep undecodable ASCII-range bytes
        text = head.decode(encoding, errors="replace").replace("\ufffd", "\udcff")
    line = text.lstrip("\ufeff\r\n").splitlines()[0]
    if _has_bad_bytes(line):
        raise CsvFileError(
            f"The header line of {file_name} is not valid {encoding}; {hints.encoding}."
        )
    return line


def _check_headers(headers: list[str], file_name: str) -> None:
    seen = set()
    for header in headers:
        if header and header.lower() in seen:
            raise CsvFileError(f"Column {header!r} appears twice in the header of {file_name}.")
        seen.add(header.lower())
    if not any(headers):
        raise CsvFileError(f"{file_name} has no header line naming its columns.")


def _checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def importable_fields(target_type: TargetType) -> list[ImportField]:
    """The address plus the model's own text fields; required ones are those without blank."""
    if target_type.model is get_user_model():
        raise CsvFileError("Users are not imported from CSV; import contacts or leads.")
    fields = [ImportField(EMAIL, "Email address", required=True, max_length=254)]
    for model_field in target_type.model._meta.concrete_fields:
        if _importable(model_field):
            fields.append(_import_field(model_field))
    return fields


def _importable(model_field: models.Field) -> bool:
    return (
        isinstance(model_field, models.CharField | models.TextField)
        and model_field.editable
        and not model_field.primary_key
    )


def _import_field(model_field: models.Field) -> ImportField:
    choices = None
    if model_field.choices:
        choices = {}
        for value, label in model_field.flatchoices:
            choices[str(label).lower()] = value
            choices[str(value).lower()] = value
    return ImportField(
        model_field.name,
        str(model_field.verbose_name).capitalize(),
        required=not model_field.blank and not model_field.has_default(),
        max_length=model_field.max_length,
        choices=choices,
    )


def _squash(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def default_mapping(
    headers: list[str], fields: list[ImportField], given: dict[str, str] | None = None
) -> dict[str, str]:
    """Field name -> header: `given` (mapped by hand), the other fields guessed from headers.

    Each field takes the first of its spellings (its name, its label, then its
    synonyms, most specific first) that names a column no field has taken yet.
    """
    mapping = {name: header for name, header in (given or {}).items() if header}
    squashed: dict[str, str] = {}
    for header in headers:
        if header:
            squashed.setdefault(_squash(header), header)
    for import_field in fields:
        if import_field.name in (given or {}):
            continue
        spellings = [_squash(import_field.name), _squash(import_field.label)]
        spellings += SYNONYMS.get(import_field.name, ())
        taken = set(mapping.values())
        header = next(
            (squashed[s] for s in spellings if s in squashed and squashed[s] not in taken), None
        )
        if header:
            mapping[import_field.name] = header
    return mapping


def check_mapping(csv_file: CsvFile, fields: list[ImportField], mapping: dict[str, str]) -> None:
    known = {f.name for f in fields}
    for name, header in mapping.items():
        if name not in known:
            raise CsvFileError(f"Unknown field {name!r}; fields are: {', '.join(sorted(known))}.")
        if header not in csv_file.headers:
            raise CsvFileError(
                f"No column {header!r} in the file; its columns are: {', '.join(csv_file.headers)}."
            )
    if EMAIL not in mapping and len(csv_file.headers) == 1:
        raise CsvFileError(
            "No address column, and no delimiter (, ; tab |) in the header line: "
            f"is {csv_file.name} a CSV file with a header?"
        )
    if EMAIL not in mapping:
        raise CsvFileError(
            "No address column: name the column holding email addresses "
            f"{csv_file.hints.address_column}; the file's columns are: "
            f"{', '.join(csv_file.headers)}."
        )
    missing = [f.label for f in fields if f.required and f.name not in mapping]
    if missing:
        raise CsvFileError(f"No column mapped to required field(s): {', '.join(missing)}.")


def read_rows(csv_file: CsvFile) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) for every non-blank row after the header."""
    with csv_file.open_text() as text:
        reader = csv.reader(text, delimiter=csv_file.delimiter)
        try:
            next(reader)
            line = reader.line_num + 1
            for row in reader:
                if any(value.strip() for value in row):
                    yield line, row
                line = reader.line_num + 1
        except csv.Error as error:
            message = f"line {reader.line_num}: the file is not valid CSV: {error}"
            raise CsvFileError(message) from None
        except UnicodeDecodeError:  # UTF-16/32 cannot keep bad bytes for a per-row error
            message = (
                f"after line {reader.line_num}: the file is not valid {csv_file.encoding};"
                f" {csv_file.hints.encoding}"
            )
            raise CsvFileError(message) from None


class RowChecker:
    """Turns raw rows into ValidRows or RowErrors, remembering addresses seen in the file."""

    def __init__(self, csv_file: CsvFile, fields: list[ImportField], mapping: dict[str, str]):
        self.csv_file = csv_file
        self.columns = {name: csv_file.headers.index(header) for name, header in mapping.items()}
        self.fields = [f for f in fields if f.name in mapping]
        self.seen: dict[str, int] = {}

    def check(self, line: int, row: list[str]) -> ValidRow | RowError:
        if _has_bad_bytes("".join(row)):
            encoding, hint = self.csv_file.encoding, self.csv_file.hints.encoding
            return RowError(line, f"bytes that are not valid {encoding}; {hint}")
        if len(row) != len(self.csv_file.headers):
            return RowError(line, self._count_problem(line, row))
        values = {name: row[index].strip() for name, index in self.columns.items()}
        problem = self._field_problem(values)
        if problem:
            return RowError(line, problem)
        try:
            address = validate_address(values.pop(EMAIL))
        except ValidationError as error:
            return RowError(line, error.messages[0])
        if address in self.seen:
            return RowError(line, f"duplicate of line {self.seen[address]} ({address})")
        self.seen[address] = line
        return ValidRow(line, address, values)

    def _count_problem(self, line: int, row: list[str]) -> str:
        if any("\n" in value or "\r" in value for value in row):
            # A quote never closed runs on over the line ends that follow, into one field.
            return f"unterminated quote starting at line {line}"
        return f"{len(row)} fields where the header has {len(self.csv_file.headers)}"

    def _field_problem(self, values: dict[str, str]) -> str | None:
        return field_problem(self.fields, values)


def field_problem(fields: list[ImportField], values: dict[str, str]) -> str | None:
    """What is wrong with a row's values, or None; choice labels become their values.

    Every field in `fields` must be a key of `values` (an empty string when not given).
    """
    for import_field in fields:
        value = values[import_field.name]
        if not value:
            if import_field.required:
                return f"{import_field.label} is missing"
            continue
        if import_field.max_length and len(value) > import_field.max_length:
            return f"{import_field.label} is longer than {import_field.max_length} characters"
        if import_field.choices is not None:
            if value.lower() not in import_field.choices:
                return f"{import_field.label} {value!r} is not one of the allowed values"
            values[import_field.name] = import_field.choices[value.lower()]
    return None


@dataclass
class BatchPlan:
    new: list[ValidRow]
    changed: list[models.Model]
    unchanged: list[int]  # object ids of records left as they are
    address_ids: dict[str, int]


def plan_batch(rows: list[ValidRow], target_type: TargetType, *, write: bool) -> BatchPlan:
    """Match rows to existing records of the type by primary address."""
    addresses = [row.address for row in rows]
    if write:
        now = timezone.now()
        suppressed = Suppression.objects.suppressed(addresses)
        insert_ignoring_duplicates(
            EmailAddress,
            [
                {
                    "address": a,
                    "opt_out": a in suppressed,
                    "invalid": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for a in addresses
            ],
        )
    address_ids = dict(
        EmailAddress.objects.filter(address__in=addresses).values_list("address", "id")
    )
    owners = dict(
        RecordEmailAddress.objects.filter(
            content_type=target_type.content_type,
            primary=True,
            email_address_id__in=address_ids.values(),
        )
        .order_by("-object_id")  # several records sharing it: the oldest wins
        .values_list("email_address_id", "object_id")
    )
    fields = list(rows[0].values) if rows else []
    current = {
        pk: dict(zip(fields, values, strict=True))
        for pk, *values in target_type.model.objects.filter(pk__in=owners.values())
        .values_list("pk", *fields)
        .iterator()
    }
    plan = BatchPlan([], [], [], address_ids)
    for row in rows:
        pk = owners.get(address_ids.get(row.address))
        if pk not in current:
            plan.new.append(row)
        elif changed := _changes(current[pk], row.values):
            plan.changed.append(target_type.model(pk=pk, **{**current[pk], **changed}))
        else:
            plan.unchanged.append(pk)
    return plan


def _changes(current: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """The row's non-empty values that differ from the record's (empty ones never wipe data)."""
    return {name: value for name, value in values.items() if value and current[name] != value}


def write_batch(
    plan: BatchPlan, target_type: TargetType, target_list: TargetList | None, fields: list[str]
) -> None:
    model, content_type = target_type.model, target_type.content_type
    created = create_records(model, [row.values for row in plan.new])
    insert_ignoring_duplicates(
        RecordEmailAddress,
        [
            {
                "content_type_id": content_type.pk,
                "object_id": pk,
                "email_address_id": plan.address_ids[row.address],
                "primary": True,
            }
            for row, pk in zip(plan.new, created, strict=True)
        ],
    )
    if plan.changed and fields:
        model.objects.bulk_update(plan.changed, fields)
    object_ids = created + [r.pk for r in plan.changed] + plan.unchanged
    if target_list is None:  # an upsert through the API names no list
        return
    now = timezone.now()
    insert_ignoring_duplicates(
        TargetListMember,
        [
            {
                "target_list_id": target_list.pk,
                "content_type_id": content_type.pk,
                "object_id": pk,
                "opted_out": False,
                "added_at": now,
            }
            for pk in object_ids
        ],
    )


def create_records(model: type[models.Model], rows: list[dict[str, str]]) -> list[int]:
    """Create one record per row of field values; their ids in row order.

    On PostgreSQL the ids are drawn from the table's sequence first, so the rows go
    in as one INSERT ... SELECT with no per-value ORM work; fields the file does
    not fill get the model's defaults, computed once per batch.
    """
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    pk_field = model._meta.pk
    if connection.vendor != "postgresql" or not isinstance(pk_field, models.AutoField):
        return [record.pk for record in model.objects.bulk_create([model(**r) for r in rows])]
    ids = _allocate_ids(connection, model, len(rows))
    defaults = _batch_defaults(model, set(rows[0]))
    insert_ignoring_duplicates(
        model,
        [{pk_field.attname: pk, **defaults, **row} for pk, row in zip(ids, rows, strict=True)],
    )
    return ids


def _allocate_ids(connection, model: type[models.Model], count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _batch_defaults(model: type[models.Model], filled: set[str]) -> dict:
    """Values of the fields the file leaves out, as a new instance would save them."""
    template = model()
    return {
        field.attname: field.pre_save(template, add=True)
        for field in model._meta.concrete_fields
        if not field.primary_key and field.attname not in filled
    }


def insert_ignoring_duplicates(model: type[models.Model], rows: list[dict]) -> None:
    """Insert rows (dicts of field names), skipping any that break a unique constraint.

    On PostgreSQL the batch travels as one JSON document unpacked by
    json_populate_recordset into one INSERT ... SELECT: the ORM's per-value work
    in bulk_create, and psycopg quoting big array parameters, were most of a
    batch's time.
    """
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in rows[0]]
    document = _json_rows(fields, rows) if connection.vendor == "postgresql" else None
    if document is None:
        model.objects.bulk_create([model(**row) for row in rows], ignore_conflicts=True)
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {columns}"
        f" FROM json_populate_recordset(NULL::{table}, %s::json) ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])


def _json_rows(fields: list[models.Field], rows: list[dict]) -> str | None:
    """The rows keyed by column name as JSON, or None if a value has no JSON form."""
    names = [
        (field.name if field.name in rows[0] else field.attname, field.column) for field in fields
    ]
    try:
        return json.dumps(
            [{column: row[name] for name, column in names} for row in rows], cls=DjangoJSONEncoder
        )
    except TypeError:
        return None


@dataclass
class Importer:
    """One pass over a file: dry run, fresh run or resumed run."""

    csv_file: CsvFile
    target_type: TargetType
    mapping: dict[str, str]
    target_list: TargetList | None = None
    run: ImportRun | None = None
    dry_run: bool = False
    batch_size: int = 1000
    progress: Callable[[int], None] | None = None
    report: ImportReport = field(default_factory=ImportReport)

    def __post_init__(self) -> None:
        self.fields = importable_fields(self.target_type)
        check_mapping(self.csv_file, self.fields, self.mapping)
        self.checker = RowChecker(self.csv_file, self.fields, self.mapping)
        self.report.dry_run = self.dry_run
        self.skip_to = 0 if self.dry_run or self.run is None else self.run.line_done
        self.report.resumed_after_line = self.skip_to

    def run_import(self) -> ImportReport:
        batch: list[ValidRow] = []
        pending_errors: list[RowError] = []
        last_line = 0
        for line, row in read_rows(self.csv_file):
            result = self.checker.check(line, row)  # also for skipped rows: duplicates
            last_line = line
            if line <= self.skip_to:
                continue
            self.report.rows += 1
            if isinstance(result, RowError):
                pending_errors.append(result)
            else:
                batch.append(result)
            if len(batch) + len(pending_errors) >= self.batch_size:
                self._flush(batch, pending_errors, last_line)
                batch, pending_errors = [], []
        self._flush(batch, pending_errors, last_line)
        return self.report

    def _flush(self, batch: list[ValidRow], errors: list[RowError], last_line: int) -> None:
        if not batch and not errors:
            return
        with transaction.atomic():
            plan = plan_batch(batch, self.target_type, write=not self.dry_run)
            if not self.dry_run:
                write_batch(plan, self.target_type, self.target_list, self._update_fields())
                self._record_progress(plan, errors, last_line)
        self.report.created += len(plan.new)
        self.report.updated += len(plan.changed)
        self.report.unchanged += len(plan.unchanged)
        for error in errors:
            self.report.add_error(error)
        if self.progress:
            self.progress(len(batch) + len(errors))

    def _update_fields(self) -> list[str]:
        return [name for name in self.mapping if name != EMAIL]

    def _record_progress(self, plan: BatchPlan, errors: list[RowError], last_line: int) -> None:
        if self.run is None:
            return
        kept = list(self.run.errors)
        kept += [[e.line, e.message] for e in errors][: max(0, KEPT_ERRORS - len(kept))]
        self.run.errors = kept
        RUN_LEASE.renew(
            self.run,
            line_done=last_line,
            created_count=F("created_count") + len(plan.new),
            updated_count=F("updated_count") + len(plan.changed),
            unchanged_count=F("unchanged_count") + len(plan.unchanged),
            error_count=F("error_count") + len(errors),
            errors=kept,
        )


def run_import(
    run: ImportRun, csv_file: CsvFile, target_type: TargetType, **options
) -> ImportReport:
    """Import (or resume) the run's file into its list; the run ends DONE or FAILED.

    One process at a time: two imports of one run would both find a new address
    absent and create its record twice. ImportBusy when another holds the run.
    """
    if not RUN_LEASE.take(run, status=ImportRun.Status.RUNNING, failure=""):
        raise ImportBusy(
            f"Import run #{run.pk} ({run.file_name}) is already being imported by another"
            f" process. If that process stopped, the run can be resumed {RUN_LEASE.minutes}"
            " minutes after its last progress."
        )
    importer = Importer(
        csv_file, target_type, run.mapping, target_list=run.target_list, run=run, **options
    )
    try:
        report = importer.run_import()
    except BaseException as error:
        RUN_LEASE.release(
            run, status=ImportRun.Status.FAILED, failure=f"{type(error).__name__}: {error}"
        )
        raise
    RUN_LEASE.release(run, status=ImportRun.Status.DONE)
    run.refresh_from_db()
    return report


def resumable_run(
    csv_file: CsvFile, target_type: TargetType, target_list: TargetList, mapping: dict[str, str]
) -> ImportRun:
    """The unfinished run of this very file, list, type and mapping, or a new run."""
    check_mapping(csv_file, importable_fields(target_type), mapping)
    unfinished = ImportRun.objects.filter(
        checksum=csv_file.checksum,
        target_type=target_type.content_type,
        target_list=target_list,
        status__in=[ImportRun.Status.RUNNING, ImportRun.Status.FAILED],
    ).order_by("-created_at")
    for run in unfinished:
        if run.mapping == mapping:
            return run
    return ImportRun.objects.create(
        target_list=target_list,
        target_type=target_type.content_type,
        file_name=csv_file.name,
        checksum=csv_file.checksum,
        encoding=csv_file.encoding,
        mapping=mapping,
    )


# An upload nobody mapped within a week is abandoned. A stored file no run names
# (the upload request died between storing and recording it) waits a day, so an
# upload being recorded right now is never taken.
ABANDONED_AFTER = timedelta(days=7)
ORPHAN_AFTER = timedelta(days=1)


def uploads_directory() -> Path:
    return Path(settings.MEDIA_ROOT) / "imports"


def discard_abandoned_uploads(now: datetime | None = None) -> int:
    """Delete uploads never imported and their waiting runs; how many files went.

    Runs that imported something (running, failed and resumable, done) keep
    their file until they finish, as before.
    """
    now = now or timezone.now()
    abandoned = ImportRun.objects.filter(
        status=ImportRun.Status.PENDING, updated_at__lt=now - ABANDONED_AFTER
    )
    removed = 0
    for path in abandoned.exclude(file_path="").values_list("file_path", flat=True):
        removed += _unlink(Path(path))
    abandoned.delete()
    named = set(ImportRun.objects.exclude(file_path="").values_list("file_path", flat=True))
    directory = uploads_directory()
    for path in directory.glob("*.csv") if directory.is_dir() else []:
        old = path.stat().st_mtime < (now - ORPHAN_AFTER).timestamp()
        if old and str(path) not in named:
            removed += _unlink(path)
    return removed


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def open_upload(run: ImportRun) -> CsvFile:
    """An admin upload's stored file, named as uploaded, its messages speaking of the page."""
    return open_csv(run.file_path, run.encoding or None, name=run.file_name, hints=ADMIN_PAGE)


def start_target_list(run: ImportRun) -> TargetList:
    """The run's list, created now if the upload named a new one (and nobody made it since)."""
    if run.target_list_id is None:
        run.target_list, _ = TargetList.objects.get_or_create(name=run.new_list_name)
        ImportRun.objects.filter(pk=run.pk).update(target_list=run.target_list)
    return run.target_list


class PreviewSuperseded(Exception):
    """Someone asked for another preview of the run: this one's outcome would be stale."""


def queue_preview(run: ImportRun, mapping: dict[str, str], total_rows: int) -> str:
    """Record a background preview of the run with this mapping; its key, for the task."""
    key = uuid.uuid4().hex
    run.preview = dict(key=key, mapping=mapping, state="queued", rows=0, total=total_rows)
    ImportRun.objects.filter(pk=run.pk).update(preview=run.preview)
    return key


def preview_stored_upload(run: ImportRun, key: str) -> ImportReport | None:
    """The dry run of an admin upload, its progress and report kept in `run.preview`.

    Each batch records the rows read so far, for the page's progress bar. A newer
    preview of the run (another key) stops this one: None.
    """
    preview = dict(run.preview)

    def save(**changes) -> None:
        preview.update(changes)
        if not ImportRun.objects.filter(pk=run.pk, preview__key=key).update(preview=preview):
            raise PreviewSuperseded

    def progress(count: int) -> None:
        save(state="running", rows=preview["rows"] + count)

    try:
        save(state="running", rows=0)
        importer = Importer(
            open_upload(run),
            target_type_for(run.target_type_id),
            preview["mapping"],
            dry_run=True,
            progress=progress,
        )
        report = importer.run_import()
    except PreviewSuperseded:
        return None
    except Exception as error:  # the page must stop waiting, and say why
        with contextlib.suppress(PreviewSuperseded):
            save(state="failed", failure=str(error))
        if isinstance(error, CsvFileError):
            return None
        raise
    with contextlib.suppress(PreviewSuperseded):
        save(state="done", report=report.as_json())
    return report


def import_stored_upload(run: ImportRun) -> ImportReport:
    """Import (or resume) an admin upload; its stored file goes once the run is done."""
    csv_file = open_upload(run)
    report = run_import(run, csv_file, target_type_for(run.target_type_id))
    Path(run.file_path).unlink(missing_ok=True)
    ImportRun.objects.filter(pk=run.pk).update(file_path="")
    return report


# ---------------------------------------------------------------------------
# Upsert by address (the REST API): the importer's batches, from records instead of a file

UPSERT_BATCH = 1000


@dataclass
class UpsertResult:
    """One outcome per record given: created, updated or unchanged with its id, or an error."""

    outcomes: list[dict] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.get("result") == result)


def upsert_records(
    target_type: TargetType, records: list[dict], target_list: TargetList | None = None
) -> UpsertResult:
    """Create or update records of the type matched by primary address, set-based per batch.

    Values left out or empty never wipe data; required fields are needed only for
    records that are created. With a target list, every record written joins it.
    """
    fields = importable_fields(target_type)
    given = [f.name for f in fields if f.name != EMAIL and any(f.name in r for r in records)]
    checks = [replace(f, required=False) for f in fields if f.name in given]
    outcomes: list[dict] = [{} for _ in records]
    seen: dict[str, int] = {}
    rows: list[ValidRow] = []
    for index, record in enumerate(records):
        row = _upsert_row(index, record, given, checks, seen)
        if isinstance(row, RowError):
            outcomes[index] = {"index": index, "error": row.message}
        else:
            rows.append(row)
    required = [f for f in fields if f.required and f.name != EMAIL]
    with transaction.atomic():
        _lock_target_type(target_type)
        for start in range(0, len(rows), UPSERT_BATCH):
            batch = rows[start : start + UPSERT_BATCH]
            _upsert_batch(batch, target_type, target_list, given, required, outcomes)
    return UpsertResult(outcomes)


def _upsert_row(
    index: int, record: dict, given: list[str], checks: list[ImportField], seen: dict[str, int]
) -> ValidRow | RowError:
    unknown = set(record) - {EMAIL, *given}
    if unknown:
        return RowError(index, f"unknown fields: {', '.join(sorted(unknown))}")
    if any(not isinstance(value, str) for value in record.values()):
        return RowError(index, "every value must be a string")
    values = {name: record.get(name, "").strip() for name in given}
    problem = field_problem(checks, values)
    if problem:
        return RowError(index, problem)
    try:
        address = validate_address(record.get(EMAIL, ""))
    except ValidationError as error:
        return RowError(index, error.messages[0])
    if address in seen:
        return RowError(index, f"duplicate of record {seen[address]} ({address})")
    seen[address] = index
    return ValidRow(index, address, values)


def _lock_target_type(target_type: TargetType) -> None:
    """Two upserts of one new address at once would both create it: one at a time per type."""
    connection = connections[router.db_for_write(target_type.model)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [7115, target_type.content_type.pk]
            )


def _upsert_batch(
    batch: list[ValidRow],
    target_type: TargetType,
    target_list: TargetList | None,
    given: list[str],
    required: list[ImportField],
    outcomes: list[dict],
) -> None:
    plan = plan_batch(batch, target_type, write=True)
    creatable = []
    for row in plan.new:
        missing = [f.label for f in required if not row.values.get(f.name)]
        if missing:
            outcomes[row.line] = {"index": row.line, "error": f"{missing[0]} is missing"}
        else:
            creatable.append(row)
    plan.new = creatable
    write_batch(plan, target_type, target_list, given)
    owners = dict(
        RecordEmailAddress.objects.filter(
            content_type=target_type.content_type,
            primary=True,
            email_address__address__in=[row.address for row in batch],
        )
        .order_by("-object_id")  # as plan_batch: several records sharing it, the oldest wins
        .values_list("email_address__address", "object_id")
    )
    new = {row.address for row in plan.new}
    changed = {record.pk for record in plan.changed}
    for row in batch:
        if outcomes[row.line]:
            continue
        pk = owners[row.address]
        result = "created" if row.address in new else "updated" if pk in changed else "unchanged"
        outcomes[row.line] = {"index": row.line, "email": row.address, "id": pk, "result": result}
