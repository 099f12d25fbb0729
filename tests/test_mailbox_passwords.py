"""Mailbox passwords are encrypted at rest, rotate by a list of keys, and still log in."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bounces import imap
from bounces.models import GroupEmailAccount
from tests.factories import make_group_account

IMAP_SECRET, SMTP_SECRET = "imap-s3cret-Pa55", "smtp-s3cret-Pa55"


def raw_passwords(account: GroupEmailAccount) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT imap_password, smtp_password FROM bounces_groupemailaccount WHERE id = %s",
            [account.pk],
        )
        return cursor.fetchone()


def make_account(**overrides) -> GroupEmailAccount:
    return GroupEmailAccount.objects.create(
        name="Bounces",
        email_address="bounces@example.test",
        imap_host="imap.example.test",
        imap_password=IMAP_SECRET,
        smtp_password=SMTP_SECRET,
        **overrides,
    )


@pytest.mark.django_db
def test_the_database_holds_tokens_not_passwords(settings) -> None:
    key = Fernet.generate_key().decode()
    settings.MAILBOX_PASSWORD_KEYS = [key]
    account = make_account()
    GroupEmailAccount.objects.create(name="No SMTP", email_address="x@example.test")

    imap_raw, smtp_raw = raw_passwords(account)
    assert IMAP_SECRET not in imap_raw and SMTP_SECRET not in smtp_raw
    assert Fernet(key.encode()).decrypt(imap_raw.encode()).decode() == IMAP_SECRET
    assert Fernet(key.encode()).decrypt(smtp_raw.encode()).decode() == SMTP_SECRET
    reread = GroupEmailAccount.objects.get(pk=account.pk)
    assert (reread.imap_password, reread.smtp_password) == (IMAP_SECRET, SMTP_SECRET)
    assert GroupEmailAccount.objects.get(name="No SMTP").smtp_password == ""

    GroupEmailAccount.objects.filter(pk=account.pk).update(imap_password="changed-by-update")
    assert "changed-by-update" not in raw_passwords(account)[0]
    assert GroupEmailAccount.objects.get(pk=account.pk).imap_password == "changed-by-update"


@pytest.mark.django_db
def test_rotation_reencrypts_under_the_first_key(settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.MAILBOX_PASSWORD_KEYS = [old]
    account = make_account()

    settings.MAILBOX_PASSWORD_KEYS = [new, old]
    call_command("rotate_mailbox_passwords")

    imap_raw, smtp_raw = raw_passwords(account)
    assert Fernet(new.encode()).decrypt(imap_raw.encode()).decode() == IMAP_SECRET
    assert Fernet(new.encode()).decrypt(smtp_raw.encode()).decode() == SMTP_SECRET
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(imap_raw.encode())
    settings.MAILBOX_PASSWORD_KEYS = [new]  # the old key is gone: passwords still read
    assert GroupEmailAccount.objects.get(pk=account.pk).smtp_password == SMTP_SECRET


@pytest.mark.django_db
def test_the_poller_logs_in_with_the_decrypted_password(imap_mailbox) -> None:
    account = make_group_account(imap_mailbox)
    assert imap_mailbox.password not in raw_passwords(account)[0]

    fresh = GroupEmailAccount.objects.get(pk=account.pk)
    assert "holds 0 message(s)" in imap.check_connection(fresh)
    assert imap.poll_account(fresh).error == ""


@pytest.mark.django_db
def test_admin_never_shows_the_password_and_empty_keeps_it(admin_client) -> None:
    account = make_account()
    url = f"/admin/bounces/groupemailaccount/{account.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert IMAP_SECRET not in page and SMTP_SECRET not in page
    assert raw_passwords(account)[0] not in page

    form = {
        "name": "Renamed",
        "email_address": "bounces@example.test",
        "active": "on",
        "imap_host": "imap.example.test",
        "imap_port": "993",
        "imap_security": "tls",
        "imap_folder": "INBOX",
        "after_processing": "seen",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "imap_password": "",
        "smtp_password": "new-smtp-pass",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]

    account.refresh_from_db()
    assert (account.name, account.imap_password) == ("Renamed", IMAP_SECRET)
    assert account.smtp_password == "new-smtp-pass"
    assert "new-smtp-pass" not in raw_passwords(account)[1]


def test_production_needs_valid_keys(settings) -> None:
    settings.MAILBOX_PASSWORD_KEYS = []
    assert "bounces.E001" in {m.id for m in run_checks()}
    settings.MAILBOX_PASSWORD_KEYS = [Fernet.generate_key().decode(), "not-a-key"]
    errors = [m for m in run_checks() if m.id == "bounces.E002"]
    assert errors and "key number 2" in errors[0].msg and "not-a-key" not in errors[0].msg
    settings.MAILBOX_PASSWORD_KEYS = [Fernet.generate_key().decode()]
    assert not {m.id for m in run_checks()} & {"bounces.E001", "bounces.E002"}


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_existing_rows(settings) -> None:
    key = Fernet.generate_key().decode()
    settings.MAILBOX_PASSWORD_KEYS = [key]
    before, after = (
        [("bounces", "0006_held_reports")],
        [("bounces", "0007_encrypt_mailbox_passwords")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bounces_groupemailaccount (name, email_address, from_name,"
                " reply_to_address, reply_to_name, active, imap_host, imap_port, imap_security,"
                " imap_username, imap_password, imap_folder, handles_bounces, after_processing,"
                " processed_folder, use_smtp_for_mass_email, smtp_host, smtp_port,"
                " smtp_security, smtp_username, smtp_password, last_uid, last_error, created_at)"
                " VALUES ('Old', 'old@example.test', '', '', '', true, 'imap.example.test', 993,"
                " 'tls', 'u', %s, 'INBOX', true, 'seen', '', false, '', 587, 'starttls', '', %s,"
                " 0, '', now()) RETURNING id",
                [IMAP_SECRET, ""],
            )
            pk = cursor.fetchone()[0]
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )

    account = GroupEmailAccount.objects.get(pk=pk)
    imap_raw, smtp_raw = raw_passwords(account)
    assert Fernet(key.encode()).decrypt(imap_raw.encode()).decode() == IMAP_SECRET
    assert smtp_raw == "" and account.imap_password == IMAP_SECRET
