"""python manage.py import_targets FILE --type contact --list NAME [--map email=E-mail,...]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from targets import importing
from targets.models import TargetList
from targets.registry import target_type_by_key

SHOWN_ERRORS = 50


class Command(BaseCommand):
    help = (
        "Import records from a CSV file into a target list. Rows are matched to existing "
        "records by primary address, so re-running changes nothing; an interrupted run "
        "resumes after its last committed batch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--type", required=True, help="contact, lead, account, ...")
        parser.add_argument("--list", required=True, dest="list_name", help="Target list name")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            help=(
                "field=Column pairs, comma-separated or repeated; fields not named are guessed "
                "from the headers, and field= (no column) leaves a field out"
            ),
        )
        parser.add_argument("--dry-run", action="store_true", help="Check rows, write nothing")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--encoding", help="File encoding (default UTF-8, with or w/o BOM)")

    def handle(self, *args, **options) -> None:
        target_type = target_type_by_key(options["type"])
        if target_type is None:
            raise CommandError(f"Unknown target type {options['type']!r}.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            self.run(target_type, options)
        except (importing.CsvFileError, OSError) as error:
            raise CommandError(str(error)) from None

    def run(self, target_type, options: dict) -> None:
        csv_file = importing.open_csv(options["file"], options["encoding"])
        fields = importing.importable_fields(target_type)
        mapping = importing.default_mapping(csv_file.headers, fields, parse_mapping(options["map"]))
        importing.check_mapping(csv_file, fields, mapping)
        self.stdout.write("Mapping: " + ", ".join(f"{k} <- {v!r}" for k, v in mapping.items()))
        with tqdm(
            total=csv_file.line_count() - 1, unit="rows", disable=options["verbosity"] == 0
        ) as bar:
            report = self.import_or_check(csv_file, target_type, mapping, options, bar.update)
        self.print_report(report)

    def import_or_check(
        self, csv_file, target_type, mapping, options, progress
    ) -> importing.ImportReport:
        settings = {"batch_size": options["batch_size"], "progress": progress}
        if options["dry_run"]:
            importer = importing.Importer(csv_file, target_type, mapping, dry_run=True, **settings)
            return importer.run_import()
        target_list, created = TargetList.objects.get_or_create(name=options["list_name"])
        if created:
            self.stdout.write(f"Created target list {target_list.name!r}.")
        run = importing.resumable_run(csv_file, target_type, target_list, mapping)
        if run.line_done:
            self.stdout.write(f"Resuming run #{run.pk} after line {run.line_done}.")
            progress(run.line_done - 1)  # the bar counts data rows; line 1 is the header
        try:
            return importing.run_import(run, csv_file, target_type, **settings)
        except importing.ImportBusy as busy:
            raise CommandError(str(busy)) from busy

    def print_report(self, report: importing.ImportReport) -> None:
        verb = "would be" if report.dry_run else "were"
        self.stdout.write(
            f"{report.rows} rows read: {report.created} records {verb} created, "
            f"{report.updated} updated, {report.unchanged} unchanged, "
            f"{report.error_count} rows with errors."
        )
        for error in report.errors[:SHOWN_ERRORS]:
            self.stderr.write(str(error))
        if report.error_count > SHOWN_ERRORS:
            self.stderr.write(f"... and {report.error_count - SHOWN_ERRORS} more errors.")


def parse_mapping(values: list[str]) -> dict[str, str]:
    mapping = {}
    for value in values:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            name, sep, header = pair.partition("=")
            if not sep or not name.strip():
                raise CommandError(f"--map wants field=Column pairs, not {pair!r}.")
            mapping[name.strip()] = header.strip()
    return mapping
