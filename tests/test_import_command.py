"""python manage.py import_targets: mapping option, dry run, errors, resuming."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from targets import importing
from targets.models import Contact, ImportRun, TargetList

pytestmark = pytest.mark.django_db

FILE = (
    "Mail;Vorname;Nachname\n"
    "ada@example.com;Ada;Lovelace\n"
    "broken@;X;Y\n"
    "alan@example.com;Alan;Turing\n"
)


def run(*args, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    options.setdefault("verbosity", 0)
    call_command("import_targets", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text(FILE)
    return path


def test_imports_with_an_explicit_mapping_and_creates_the_list(csv_path):
    out, err = run(
        str(csv_path),
        "--type",
        "contact",
        "--list",
        "Fair",
        "--map",
        "email=Mail,last_name=Nachname,first_name=",
    )
    assert "Created target list 'Fair'" in out
    assert "3 rows read: 2 records were created, 0 updated, 0 unchanged, 1 rows with errors" in out
    assert "line 3: 'broken@' is not a valid email address" in err
    assert TargetList.objects.get(name="Fair").entry_count() == 2
    assert set(Contact.objects.values_list("first_name", flat=True)) == {""}  # left out


def test_repeated_map_options_and_batch_size(csv_path):
    run(
        str(csv_path),
        "--type=contact",
        "--list=Fair",
        "--map=email=Mail",
        "--map=first_name=Vorname,last_name=Nachname",
        "--batch-size=1",
    )
    assert sorted(Contact.objects.values_list("first_name", flat=True)) == ["Ada", "Alan"]


def test_dry_run_writes_nothing(csv_path):
    out, _ = run(str(csv_path), "--type", "contact", "--list", "Fair", "--dry-run")
    assert "2 records would be created" in out
    assert not Contact.objects.exists() and not TargetList.objects.exists()
    assert not ImportRun.objects.exists()


def test_second_run_changes_nothing(csv_path):
    run(str(csv_path), "--type", "contact", "--list", "Fair")
    out, _ = run(str(csv_path), "--type", "contact", "--list", "Fair")
    assert "0 records were created, 0 updated, 2 unchanged" in out
    assert Contact.objects.count() == 2


def test_an_interrupted_run_resumes(csv_path, monkeypatch, capsys):
    real = importing.write_batch

    def fail_second(plan, *args):
        if any(row.address == "alan@example.com" for row in plan.new):
            raise KeyboardInterrupt  # Ctrl-C in the middle of the file
        real(plan, *args)

    monkeypatch.setattr(importing, "write_batch", fail_second)
    with pytest.raises(KeyboardInterrupt):
        run(str(csv_path), "--type", "contact", "--list", "Fair", "--batch-size", "2")
    assert Contact.objects.count() == 1
    monkeypatch.setattr(importing, "write_batch", real)
    capsys.readouterr()
    out, err = run(
        str(csv_path), "--type", "contact", "--list", "Fair", "--batch-size", "2", verbosity=1
    )
    assert "Resuming run" in out and "after line 3" in out
    # The progress bar starts where the first run stopped: 3 of 3 data rows at the end.
    assert "3/3" in capsys.readouterr().err
    assert Contact.objects.count() == 2
    assert ImportRun.objects.get().status == "done"
    assert "broken@" not in err  # its line was reported by the first run, before line 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "planet"], "Unknown target type 'planet'"),
        (["--type", "contact", "--map", "email"], "field=Column pairs"),
        (["--type", "contact", "--map", "email=Nope"], "No column 'Nope'"),
        (["--type", "contact", "--map", "shoe=Mail"], "Unknown field 'shoe'"),
        (["--type", "contact", "--map", "email="], "No address column"),
        (["--type", "contact", "--batch-size", "0"], "at least 1"),
        (["--type", "contact", "--encoding", "klingon"], "Unknown encoding"),
    ],
)
def test_bad_options_are_clear_errors_and_write_nothing(csv_path, args, message):
    with pytest.raises(CommandError, match=message):
        run(str(csv_path), "--list", "Fair", *args)
    assert not Contact.objects.exists() and not TargetList.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run(str(tmp_path / "nope.csv"), "--type", "contact", "--list", "Fair")


def test_not_a_csv_file_is_a_clear_error(tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(CommandError, match="binary data"):
        run(str(path), "--type", "contact", "--list", "Fair")


def test_progress_bar_is_shown_on_stderr(csv_path, capsys):
    call_command("import_targets", str(csv_path), "--type", "contact", "--list", "Fair")
    err = capsys.readouterr().err
    assert "100%" in err and "3/3 [" in err and "rows/s]" in err


def test_mapping_one_column_by_hand_keeps_the_guesses_for_the_others(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("Kontakt;Vorname;Nachname\nada@example.com;Ada;Lovelace\n")
    out, _ = run(str(path), "--type", "contact", "--list", "Fair", "--map", "email=Kontakt")
    assert "email <- 'Kontakt', first_name <- 'Vorname', last_name <- 'Nachname'" in out
    assert Contact.objects.values_list("first_name", "last_name").get() == ("Ada", "Lovelace")
