"""Settings come from the environment; production refuses to start without a secret."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_settings(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    unset = {"SECRET_KEY", "DATABASE_URL", "MAILBOX_PASSWORD_KEYS"}
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_settings({"MASSMAIL_ENV": "production", "MASSMAIL_VAR_DIR": str(tmp_path)}, "")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_embedded_defaults_need_no_services(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.EMAIL_BACKEND, "
        "s.TIME_ZONE, bool(s.SECRET_KEY))"
    )
    result = run_settings({"MASSMAIL_VAR_DIR": str(tmp_path)}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://",
        "massmail.outbox.EmailBackend",
        "UTC",
        "True",
    ]
    assert (tmp_path / "secret_key").exists()


def test_services_come_from_the_environment(tmp_path):
    env = {
        "MASSMAIL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://u:p@db.example:5432/mm",
        "CELERY_BROKER_URL": "redis://redis.example:6379/0",
        "EMAIL_BACKEND": "anymail.backends.sendgrid.EmailBackend",
        "ANYMAIL_SENDGRID_API_KEY": "key",
        "SECRET_KEY": "x" * 50,
        "MASSMAIL_ENV": "production",
        "ALLOWED_HOSTS": "crm.example.com",
    }
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], d['HOST'], s.CELERY_BROKER_URL, s.EMAIL_BACKEND, "
        "s.ANYMAIL['SENDGRID_API_KEY'], s.DEBUG)"
    )
    result = run_settings(env, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "db.example",
        "redis://redis.example:6379/0",
        "anymail.backends.sendgrid.EmailBackend",
        "key",
        "False",
    ]


def test_mailbox_password_key_is_generated_in_development_and_required_in_production(tmp_path):
    code = (
        "from django.conf import settings as s; from django.core.checks import run_checks; "
        "print(len(s.MAILBOX_PASSWORD_KEYS), *sorted({m.id for m in run_checks()}))"
    )
    development = run_settings({"MASSMAIL_VAR_DIR": str(tmp_path / "dev")}, code)
    assert development.returncode == 0, development.stderr
    assert development.stdout.split()[0] == "1" and "bounces.E001" not in development.stdout
    assert (tmp_path / "dev" / "mailbox_password_key").exists()

    production = {"MASSMAIL_ENV": "production", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "a"}
    result = run_settings({**production, "MASSMAIL_VAR_DIR": str(tmp_path / "prod")}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "0" and "bounces.E001" in result.stdout.split()
    assert not (tmp_path / "prod" / "mailbox_password_key").exists()


def test_outbox_backend_writes_one_eml_file_per_message(tmp_path, settings):
    from django.core.mail import EmailMessage, get_connection

    connection = get_connection("massmail.outbox.EmailBackend", outbox_dir=tmp_path)
    EmailMessage("Hi", "Body", "a@example.com", ["b@example.com"], connection=connection).send()
    files = list(tmp_path.glob("*.eml"))
    assert len(files) == 1 and b"Subject: Hi" in files[0].read_bytes()


def test_the_site_url_follows_port_in_development(tmp_path):
    code = "from django.conf import settings as s; print(s.SITE_URL, s.CELERY_WORKER_POOL)"
    result = run_settings({"MASSMAIL_VAR_DIR": str(tmp_path), "PORT": "8123"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://127.0.0.1:8123", "threads"]
    named = run_settings({"MASSMAIL_VAR_DIR": str(tmp_path), "SITE_URL": "https://x.example"}, code)
    assert named.stdout.split()[0] == "https://x.example"
