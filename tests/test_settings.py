"""Settings come from the environment; production refuses to start without a secret."""

import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

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


@pytest.mark.parametrize(
    "key",
    ["12345", "x" * 49 + "y", "abcd" * 20, "django-insecure-" + secrets.token_urlsafe(50)],
)
def test_production_refuses_a_weak_secret_key(tmp_path, key):
    env = {"MASSMAIL_ENV": "production", "MASSMAIL_VAR_DIR": str(tmp_path), "SECRET_KEY": key}
    result = run_settings(env, "")
    assert result.returncode != 0
    assert "SECRET_KEY is too weak for production" in result.stderr


def test_development_takes_any_secret_key(tmp_path):
    result = run_settings({"MASSMAIL_VAR_DIR": str(tmp_path), "SECRET_KEY": "dev"}, "")
    assert result.returncode == 0, result.stderr


def readme_production_environment() -> dict[str, str]:
    """The variables the README's production block exports, "..." left as written."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Production", 1)[1].split("```", 2)[1]
    env = {}
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            env.update(word.split("=", 1) for word in words[1:])
    return env


def test_check_deploy_is_silent_with_the_readme_production_environment(tmp_path):
    env = readme_production_environment()
    assert env["MASSMAIL_ENV"] == "production" and "SECURE_HSTS_SECONDS" in env
    env |= {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "MASSMAIL_VAR_DIR": str(tmp_path),
        # The README writes "..." for it, as for SECRET_KEY: a real key here.
        "MAILBOX_PASSWORD_KEYS": Fernet.generate_key().decode(),
    }
    # Only what a shell needs, plus the README's variables: nothing of the test run's.
    shell = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**shell, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_redirects_to_https_and_sends_hsts_as_configured(tmp_path):
    env = {
        "MASSMAIL_ENV": "production",
        "MASSMAIL_VAR_DIR": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_HSTS_SECONDS": "3600",
    }
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_PRELOAD)"
    )
    result = run_settings(env, code)
    assert result.stdout.split() == ["True", "3600", "True", "True", "False"], result.stderr
    result = run_settings({**env, "SECURE_SSL_REDIRECT": "0"}, code)
    assert result.stdout.split()[0] == "False", result.stderr


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
        "SECRET_KEY": secrets.token_urlsafe(50),
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

    production = {
        "MASSMAIL_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "a",
    }
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
