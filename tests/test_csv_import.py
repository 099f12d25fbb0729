"""CSV import into a target list: mapping, per-row errors, idempotence, resuming, admin pages."""

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType

from targets import importing
from targets.models import (
    Account,
    Contact,
    EmailAddress,
    ImportRun,
    Lead,
    RecordEmailAddress,
    TargetList,
    TargetListMember,
)
from targets.registry import target_type_by_key
from tests.factories import make_contact

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings")

CONTACTS = (
    "E-mail,Vorname,Nachname,City\n"
    "ada@example.com,Ada,Lovelace,London\n"
    "not-an-address,Bad,Row,Nowhere\n"
    "grace@example.com,Grace,,Arlington\n"
    "alan@example.com,Alan,Turing,Wilmslow\n"
    "ADA@example.com,Ada,Again,London\n"
)


def write(tmp_path: Path, text: str | bytes, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def do_import(path: Path, key: str = "contact", list_name: str = "Imported", **options):
    target_type = target_type_by_key(key)
    csv_file = importing.open_csv(path, options.pop("encoding", None))
    mapping = options.pop("mapping", None) or importing.default_mapping(
        csv_file.headers, importing.importable_fields(target_type)
    )
    target_list, _ = TargetList.objects.get_or_create(name=list_name)
    run = importing.resumable_run(csv_file, target_type, target_list, mapping)
    return importing.run_import(run, csv_file, target_type, **options), target_list


def snapshot() -> tuple:
    return (
        sorted(Contact.objects.values_list("pk", "first_name", "last_name", "city")),
        sorted(RecordEmailAddress.objects.values_list("object_id", "email_address_id", "primary")),
        sorted(TargetListMember.objects.values_list("target_list_id", "object_id", "opted_out")),
        EmailAddress.objects.count(),
    )


def test_default_mapping_understands_common_and_german_headers(tmp_path):
    csv_file = importing.open_csv(write(tmp_path, CONTACTS))
    fields = importing.importable_fields(target_type_by_key("contact"))
    assert importing.default_mapping(csv_file.headers, fields) == {
        "email": "E-mail",
        "first_name": "Vorname",
        "last_name": "Nachname",
        "city": "City",
    }


def test_valid_rows_are_imported_and_invalid_ones_reported_by_line(tmp_path):
    report, target_list = do_import(write(tmp_path, CONTACTS))
    assert (report.rows, report.created, report.error_count) == (5, 2, 3)
    assert [(e.line, e.message.split(":")[0]) for e in report.errors] == [
        (3, "'not-an-address' is not a valid email address"),
        (4, "Last name is missing"),
        (6, "duplicate of line 2 (ada@example.com)"),
    ]
    assert sorted(c.email for c in Contact.objects.all()) == [
        "ada@example.com",
        "alan@example.com",
    ]
    assert Contact.objects.get(last_name="Lovelace").city == "London"
    assert target_list.entry_count() == 2
    run = ImportRun.objects.get()
    assert (run.status, run.created_count, run.error_count) == ("done", 2, 3)
    assert run.errors[0] == [3, report.errors[0].message]


def test_reimporting_the_same_file_changes_nothing(tmp_path):
    path = write(tmp_path, CONTACTS)
    do_import(path)
    before = snapshot()
    report, _ = do_import(path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert snapshot() == before


def test_existing_record_with_that_primary_address_is_updated_not_duplicated(tmp_path):
    existing = make_contact(email="ada@example.com", first_name="A.", last_name="Lovelace")
    other_type = Lead.objects.create(last_name="Lovelace")
    other_type.set_email_addresses("alan@example.com")
    report, target_list = do_import(write(tmp_path, CONTACTS))
    existing.refresh_from_db()
    assert (report.created, report.updated) == (1, 1)
    assert (existing.first_name, existing.city) == ("Ada", "London")
    assert Contact.objects.filter(last_name="Lovelace").count() == 1
    assert Contact.objects.filter(last_name="Turing").count() == 1  # a lead is not a contact
    assert existing.pk in set(target_list.members.values_list("object_id", flat=True))


def test_empty_values_do_not_wipe_existing_data(tmp_path):
    existing = make_contact(email="ada@example.com", last_name="Lovelace", city="London")
    do_import(write(tmp_path, "email,last_name,city\nada@example.com,Lovelace,\n"))
    existing.refresh_from_db()
    assert existing.city == "London"


def test_a_crash_mid_file_keeps_whole_batches_and_a_rerun_resumes(tmp_path, monkeypatch):
    rows = "".join(f"p{n}@example.com,Person{n}\n" for n in range(1, 26))
    path = write(tmp_path, "email,last_name\n" + rows)
    real_write = importing.write_batch
    calls = []

    def crash_on_third_batch(plan, *args, **kwargs):
        calls.append(len(plan.new))
        if len(calls) == 3:
            real_write(plan, *args, **kwargs)  # the batch is half written, then ...
            raise RuntimeError("power cut")
        real_write(plan, *args, **kwargs)

    monkeypatch.setattr(importing, "write_batch", crash_on_third_batch)
    with pytest.raises(RuntimeError):
        do_import(path, batch_size=10)
    run = ImportRun.objects.get()
    assert (run.status, run.line_done, run.created_count) == ("failed", 21, 20)
    assert Contact.objects.count() == 20  # ... and its transaction rolled back
    assert "power cut" in run.failure

    monkeypatch.setattr(importing, "write_batch", real_write)
    report, target_list = do_import(path, batch_size=10)
    assert report.resumed_after_line == 21
    assert (report.rows, report.created) == (5, 5)
    run.refresh_from_db()
    assert (run.status, run.created_count, run.line_done) == ("done", 25, 26)
    assert Contact.objects.count() == 25 and target_list.entry_count() == 25
    assert ImportRun.objects.count() == 1


def test_duplicates_before_the_resume_point_are_still_caught(tmp_path):
    path = write(tmp_path, "email,last_name\na@example.com,A\nb@example.com,B\na@example.com,C\n")
    target_type = target_type_by_key("contact")
    csv_file = importing.open_csv(path)
    target_list = TargetList.objects.create(name="L")
    run = importing.resumable_run(
        csv_file, target_type, target_list, {"email": "email", "last_name": "last_name"}
    )
    ImportRun.objects.filter(pk=run.pk).update(line_done=3, status="failed")
    run.refresh_from_db()
    report = importing.run_import(run, csv_file, target_type)
    assert [str(e) for e in report.errors] == ["line 4: duplicate of line 2 (a@example.com)"]


def test_bad_encoding_is_reported_per_line_and_good_lines_import(tmp_path):
    data = "email,last_name\nok@example.com,Müller\n".encode() + b"bad@example.com,M\xfcller\n"
    report, _ = do_import(write(tmp_path, data))
    assert report.created == 1
    assert report.errors[0].line == 3
    assert "not valid utf-8-sig" in report.errors[0].message
    assert "--encoding" in report.errors[0].message


def test_an_encoding_option_reads_other_encodings_and_a_bom_is_ignored(tmp_path):
    latin = write(tmp_path, "email,last_name\nm@example.com,Müller\n".encode("cp1252"), "l.csv")
    report, _ = do_import(latin, encoding="cp1252")
    assert report.created == 1 and Contact.objects.get().last_name == "Müller"
    bom = write(tmp_path, "\ufeffemail;last_name\nb@example.com;Bom\n".encode(), "b.csv")
    csv_file = importing.open_csv(bom)
    assert (csv_file.headers, csv_file.delimiter) == (["email", "last_name"], ";")


def test_rows_with_the_wrong_number_of_fields_are_errors(tmp_path):
    report, _ = do_import(write(tmp_path, "email,last_name\na@example.com\nb@example.com,B\n"))
    assert [str(e) for e in report.errors] == ["line 2: 1 fields where the header has 2"]


def test_choices_and_lengths_are_checked(tmp_path):
    text = "email,last_name,status\na@example.com,A,Assigned\nb@example.com,B,bogus\n"
    report, _ = do_import(write(tmp_path, text), key="lead")
    assert Lead.objects.get().status == "assigned"
    assert "'bogus' is not one of the allowed values" in report.errors[0].message


def test_accounts_need_a_name(tmp_path):
    text = "Company,Email\nAcme,info@acme.example\n,nameless@example.com\n"
    report, _ = do_import(write(tmp_path, text), key="account")
    assert Account.objects.get().name == "Acme"
    assert Account.objects.get().email == "info@acme.example"
    assert str(report.errors[0]) == "line 3: Name is missing"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "binary data"),
        (b"just some text\nnothing here\n", "no delimiter"),
        (b"first_name,last_name\nAda,Lovelace\n", "No address column"),
        (b"email,email\na@example.com,b@example.com\n", "appears twice"),
        (b"em\xe9il,last_name\na@example.com,A\n", "header line"),
    ],
)
def test_files_that_cannot_be_imported_get_a_clear_error_and_nothing_is_written(
    tmp_path, content, message
):
    with pytest.raises(importing.CsvFileError, match=message):
        do_import(write(tmp_path, content))
    assert not Contact.objects.exists()
    assert not EmailAddress.objects.exists()
    assert not ImportRun.objects.exists()


def test_a_single_address_column_file_is_fine_for_accounts_only_if_names_exist(tmp_path):
    path = write(tmp_path, "email\na@example.com\n")
    with pytest.raises(importing.CsvFileError, match="required field"):
        do_import(path)


def test_users_are_not_imported(tmp_path):
    with pytest.raises(importing.CsvFileError, match="Users"):
        do_import(write(tmp_path, "email,last_name\na@example.com,A\n"), key="user")


def test_dry_run_writes_nothing_and_predicts_the_outcome(tmp_path):
    make_contact(email="ada@example.com", last_name="Lovelace", first_name="A.")
    before = snapshot()
    csv_file = importing.open_csv(write(tmp_path, CONTACTS))
    target_type = target_type_by_key("contact")
    mapping = importing.default_mapping(csv_file.headers, importing.importable_fields(target_type))
    report = importing.Importer(csv_file, target_type, mapping, dry_run=True).run_import()
    assert (report.created, report.updated, report.error_count) == (1, 1, 3)
    assert snapshot() == before


# The admin pages: upload -> mapping -> preview -> import.


def upload(admin_client, content: bytes, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"file": SimpleUploadedFile("people.csv", content), "target_type": "Contact", **fields}
    return admin_client.post("/admin/targets/targetlist/import/", data)


def test_admin_upload_map_preview_and_import(admin_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    response = upload(admin_client, CONTACTS.encode(), new_list_name="Fair")
    run = ImportRun.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/import/{run.pk}/")
    page = admin_client.get(response.url).content.decode()
    assert '<option value="Vorname" selected>' in page  # guessed from the header

    mapping = {"email": "E-mail", "first_name": "Vorname", "last_name": "Nachname"}
    preview = admin_client.post(response.url, {**mapping, "_preview": "1"}).content.decode()
    assert "2 new records" in preview and "3 rows with errors" in preview
    assert "duplicate of line 2" in preview
    assert not Contact.objects.exists()

    done = admin_client.post(response.url, {**mapping, "_import": "1"})
    assert done.status_code == 302
    assert TargetList.objects.get(name="Fair").entry_count() == 2
    run.refresh_from_db()
    assert run.status == "done" and not run.file_path  # the stored upload is removed
    assert not list((tmp_path / "imports").iterdir())
    assert "<tr><td>3</td><td>" in admin_client.get(done.url).content.decode()  # row errors


def test_admin_upload_of_a_bad_file_shows_the_error_and_stores_nothing(
    admin_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    for content, message in [(b"", "is empty"), (b"\x00\x01binary", "binary data")]:
        response = upload(admin_client, content, new_list_name="Fair")
        assert response.status_code == 200
        assert message in response.content.decode()
    assert not ImportRun.objects.exists() and not TargetList.objects.exists()
    assert not any(tmp_path.glob("imports/*"))


def test_admin_mapping_without_an_address_column_is_refused(admin_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    response = upload(admin_client, CONTACTS.encode(), new_list_name="Fair")
    page = admin_client.post(response.url, {"last_name": "Nachname", "_import": "1"})
    assert page.status_code == 200 and "No address column" in page.content.decode()
    assert not Contact.objects.exists()


def test_members_added_by_import_are_of_the_imported_type(tmp_path):
    _, target_list = do_import(write(tmp_path, "email,last_name\nl@example.com,Lead\n"), "lead")
    member = target_list.members.get()
    assert member.content_type == ContentType.objects.get_for_model(Lead)


def test_a_large_admin_upload_imports_in_a_celery_task(
    admin_client, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    from targets import tasks

    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(importing, "INLINE_IMPORT_LINES", 3)
    queued = []
    monkeypatch.setattr(tasks.import_upload, "delay", queued.append)
    response = upload(admin_client, CONTACTS.encode(), new_list_name="Big")
    mapping = {"email": "E-mail", "last_name": "Nachname"}
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(response.url, {**mapping, "_import": "1"}, follow=True)
    run = ImportRun.objects.get()
    assert queued == [run.pk]
    assert "importing in the background" in done.content.decode()
    assert not Contact.objects.exists() and run.status == "running"

    tasks.import_upload(run.pk)
    tasks.import_upload(run.pk)  # a redelivered task finds the run done
    run.refresh_from_db()
    assert (run.status, run.created_count, run.file_path) == ("done", 2, "")
    assert TargetList.objects.get(name="Big").entry_count() == 2


MAILCHIMP_HEADER = "Email Address,First Name,Last Name,Address,Phone Number,MEMBER_RATING"


def test_the_mapping_prefers_the_most_specific_header_whatever_the_hash_seed(tmp_path):
    """Mailchimp's export has "Email Address" and a postal "Address": email is the first."""
    script = (
        "import json, sys, django; django.setup()\n"
        "from targets import importing\n"
        "fields = [importing.ImportField(n, n, False) for n in"
        " ('email', 'first_name', 'last_name', 'phone')]\n"
        "print(json.dumps(importing.default_mapping(sys.argv[1].split(','), fields)))\n"
    )
    seen = set()
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed), "DJANGO_SETTINGS_MODULE": SETTINGS}
        done = subprocess.run(
            [sys.executable, "-c", script, MAILCHIMP_HEADER],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        seen.add(done.stdout.strip())
    assert [json.loads(mapping) for mapping in seen] == [
        {
            "email": "Email Address",
            "first_name": "First Name",
            "last_name": "Last Name",
            "phone": "Phone Number",
        }
    ]


def test_the_admin_preselects_the_email_address_column_of_a_mailchimp_export(
    admin_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    content = f"{MAILCHIMP_HEADER}\nada@example.com,Ada,Lovelace,1 Main St,555,2\n".encode()
    page = admin_client.get(upload(admin_client, content, new_list_name="Chimp").url)
    assert ImportRun.objects.get().mapping["email"] == "Email Address"
    assert '<option value="Email Address" selected>' in page.content.decode()


def test_an_unterminated_quote_is_named_with_its_line(tmp_path):
    text = 'email,first_name,last_name\na@example.com,"Ada,Lovelace\nb@example.com,B,C\n'
    report, _ = do_import(write(tmp_path, text))
    assert [str(e) for e in report.errors] == ["line 2: unterminated quote starting at line 2"]
    text = 'email,first_name,last_name\n"a@example.com,Ada,Lovelace\nb@example.com,B,C\n'
    report, _ = do_import(write(tmp_path, text, "other.csv"))
    assert [str(e) for e in report.errors] == ["line 2: unterminated quote starting at line 2"]


@pytest.mark.parametrize("encoding", [None, "utf-16"])
def test_excel_unicode_text_utf16_with_a_bom_and_tabs_imports(tmp_path, encoding):
    text = "E-mail\tVorname\tNachname\nzoe@example.com\tZoë\tMüller\nyu@example.com\t由\t佳\n"
    path = write(tmp_path, codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "unicode.txt")
    report, _ = do_import(path, encoding=encoding)
    assert (report.created, report.error_count) == (2, 0)
    assert sorted(Contact.objects.values_list("first_name", "last_name")) == [
        ("Zoë", "Müller"),
        ("由", "佳"),
    ]


def test_utf32_with_a_bom_imports_too(tmp_path):
    text = "email,last_name\nzoe@example.com,Müller\n"
    report, _ = do_import(write(tmp_path, text.encode("utf-32")))
    assert report.created == 1 and Contact.objects.get().last_name == "Müller"


def test_the_admin_names_the_uploaded_file_and_offers_the_encoding_on_the_page(
    admin_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    content = "E-Mail;Straße;Nachname\nm@example.com;Hauptstraße;Müller\n".encode("cp1252")
    page = upload(admin_client, content, new_list_name="Fair").content.decode()
    assert "The header line of people.csv is not valid utf-8-sig" in page
    assert "--encoding" not in page and '"Encoding"' in page.replace("&quot;", '"')
    assert '<select name="encoding"' in page and '<option value="cp1252">' in page
    assert not ImportRun.objects.exists() and not any(tmp_path.glob("imports/*"))

    response = upload(admin_client, content, new_list_name="Fair", encoding="cp1252")
    run = ImportRun.objects.get()
    assert (run.file_name, run.encoding, run.mapping["email"]) == ("people.csv", "cp1252", "E-Mail")
    mapping = {"email": "E-Mail", "last_name": "Nachname", "encoding": "cp1252", "_import": "1"}
    admin_client.post(response.url, mapping)
    assert Contact.objects.get().last_name == "Müller"


def test_the_admin_mapping_page_speaks_of_its_fields_and_changes_the_encoding(
    admin_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    content = "email;last_name\nm@example.com;Müller\n".encode("cp1252")
    response = upload(admin_client, content, new_list_name="Fair")
    preview = admin_client.post(
        response.url, {"email": "email", "last_name": "last_name", "_preview": "1"}
    ).content.decode()
    assert "not valid utf-8-sig" in preview and "--encoding" not in preview
    missing = admin_client.post(response.url, {"last_name": "last_name", "_preview": "1"})
    assert "--map" not in missing.content.decode()
    assert "No address column" in missing.content.decode()
    mapping = {"email": "email", "last_name": "last_name", "encoding": "cp1252"}
    preview = admin_client.post(response.url, {**mapping, "_preview": "1"}).content.decode()
    assert "1 new records" in preview and "0 rows with errors" in preview
    assert ImportRun.objects.get().encoding == "cp1252"


def test_a_large_admin_preview_runs_in_a_celery_task_with_a_progress_page(
    admin_client, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    from targets import tasks

    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(importing, "INLINE_IMPORT_LINES", 3)
    queued = []
    monkeypatch.setattr(tasks.preview_upload, "delay", lambda *args: queued.append(args))
    response = upload(admin_client, CONTACTS.encode(), new_list_name="Big")
    mapping = {"email": "E-mail", "first_name": "Vorname", "last_name": "Nachname"}
    with django_capture_on_commit_callbacks(execute=True):
        asked = admin_client.post(response.url, {**mapping, "_preview": "1"})
    run = ImportRun.objects.get()
    assert asked.status_code == 302 and asked.url == response.url
    assert queued == [(run.pk, run.preview["key"])]
    waiting = admin_client.get(response.url).content.decode()
    assert 'id="import-preview-progress"' in waiting and "0</span> of 5 rows read" in waiting
    progress_url = f"/admin/targets/targetlist/import/{run.pk}/preview/"
    assert admin_client.get(progress_url).json() == {"state": "queued", "rows": 0, "total": 5}

    tasks.preview_upload(*queued[0])
    assert admin_client.get(progress_url).json() == {"state": "done", "rows": 5, "total": 5}
    page = admin_client.get(response.url).content.decode()
    assert "import-preview-progress" not in page
    assert "2 new records" in page and "3 rows with errors" in page
    assert "duplicate of line 2" in page
    assert '<option value="Vorname" selected>' in page  # the previewed mapping is kept
    assert not Contact.objects.exists() and not TargetList.objects.exists()


def test_a_newer_preview_stops_the_older_one(admin_client, settings, tmp_path, monkeypatch):
    from targets import tasks

    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(importing, "INLINE_IMPORT_LINES", 3)
    monkeypatch.setattr(tasks.preview_upload, "delay", lambda *args: None)
    run = ImportRun.objects.get(
        pk=upload(admin_client, CONTACTS.encode(), new_list_name="B")
        .url.rstrip("/")
        .rsplit("/", 1)[1]
    )
    first = importing.queue_preview(run, {"email": "E-mail"}, 5)
    second = importing.queue_preview(run, {"email": "E-mail", "last_name": "Nachname"}, 5)
    run.refresh_from_db()
    tasks.preview_upload(run.pk, first)  # a no-op: its key is gone
    assert ImportRun.objects.get().preview["state"] == "queued"
    run.preview["key"] = first  # as the older task read it, just before the newer was asked
    assert importing.preview_stored_upload(run, first) is None
    assert ImportRun.objects.get().preview["key"] == second
    tasks.preview_upload(run.pk, second)
    assert ImportRun.objects.get().preview["report"]["error_count"] == 3


def test_a_broken_utf16_file_is_a_clear_error(tmp_path):
    text = codecs.BOM_UTF16_LE + "email\tlast_name\na@example.com\tA\n".encode("utf-16-le")
    with pytest.raises(importing.CsvFileError, match="not valid utf-16"):
        do_import(write(tmp_path, text + b"\x00\xd8\x41\x00\n\x00"))  # a lone surrogate
