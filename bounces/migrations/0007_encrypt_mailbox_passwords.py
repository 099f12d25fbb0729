"""Mailbox passwords encrypted at rest: widen the columns, encrypt what is there, then
read and write them through the encrypting field (same column type: no SQL)."""

from django.db import migrations, models

import bounces.passwords


def _convert(apps, convert) -> None:
    accounts = apps.get_model("bounces", "GroupEmailAccount")
    # A handful of rows: one UPDATE each, with the plain text never leaving this loop.
    for pk, imap, smtp in accounts.objects.values_list("pk", "imap_password", "smtp_password"):
        accounts.objects.filter(pk=pk).update(imap_password=convert(imap), smtp_password=convert(smtp))


def encrypt_existing(apps, schema_editor) -> None:
    _convert(apps, bounces.passwords.encrypt)


def decrypt_existing(apps, schema_editor) -> None:
    _convert(apps, bounces.passwords.decrypt)


class Migration(migrations.Migration):
    dependencies = [("bounces", "0006_held_reports")]

    operations = [
        *(
            migrations.AlterField(
                model_name="groupemailaccount",
                name=name,
                field=models.TextField(blank=True, verbose_name=label),
            )
            for name, label in (("imap_password", "IMAP password"), ("smtp_password", "SMTP password"))
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        *(
            migrations.AlterField(
                model_name="groupemailaccount",
                name=name,
                field=bounces.passwords.EncryptedPasswordField(blank=True, verbose_name=label),
            )
            for name, label in (("imap_password", "IMAP password"), ("smtp_password", "SMTP password"))
        ),
    ]
