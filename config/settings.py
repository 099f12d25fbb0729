"""Settings read from the environment, with embedded defaults for development.

Development needs nothing but Python: an SQLite file, a filesystem Celery broker
and an outbox of .eml files, all under var/. Production (MASSMAIL_ENV=production)
refuses to start without a real SECRET_KEY, and turns on HTTPS redirects, secure
cookies and (when SECURE_HSTS_SECONDS is set) HSTS.
"""

import base64
import json
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MASSMAIL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


MASSMAIL_ENV = env_str("MASSMAIL_ENV", "development")
PRODUCTION = MASSMAIL_ENV == "production"
DEBUG = env_bool("DEBUG", not PRODUCTION)


# What Django's security.W009 accepts: long, varied, not a generated development key.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if PRODUCTION:
        _refuse_weak_secret_key(key)
    if key:
        return key
    # Development: generate once and keep it, so signed links survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _refuse_weak_secret_key(key: str) -> None:
    """Everything signed (links in every message, sessions) is as strong as this key."""
    if not key:
        raise ImproperlyConfigured("SECRET_KEY must be set when MASSMAIL_ENV=production.")
    if (
        len(key) < SECRET_KEY_MIN_LENGTH
        or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or key.startswith("django-insecure-")
    ):
        raise ImproperlyConfigured(
            f"SECRET_KEY is too weak for production: it needs at least {SECRET_KEY_MIN_LENGTH} "
            f"characters, {SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different. Make one with: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )


SECRET_KEY = _secret_key()


def _mailbox_password_keys() -> list[str]:
    """Fernet keys for mailbox passwords at rest; the first encrypts, all decrypt."""
    keys = env_list("MAILBOX_PASSWORD_KEYS")
    if keys or PRODUCTION:
        return keys  # production without keys: the check bounces.E001 refuses to go on
    path = VAR_DIR / "mailbox_password_key"
    if not path.exists():
        path.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    return [path.read_text().strip()]


MAILBOX_PASSWORD_KEYS = _mailbox_password_keys()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "*")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
if env_bool("BEHIND_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# The public URL of this site, used in links inside messages when the outbound
# settings do not name one.
# In development it follows PORT, the port `python3 dev.py run` serves on.
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}").rstrip("/")
# Opt-in: hits on tracked links and the open pixel commit asynchronously on
# PostgreSQL (see tracking/hit_statement.py for the trade-off); unsubscribes never do.
MASSMAIL_HITS_ASYNC_COMMIT = env_bool("MASSMAIL_HITS_ASYNC_COMMIT", False)
# Sending (massmail.sending): a worker's claims are taken back only when its lease has
# run out (renewed as it sends); claims made without a lease (older code) by age.
MASSMAIL_SENDER_LEASE_SECONDS = env_int("MASSMAIL_SENDER_LEASE_SECONDS", 90)
MASSMAIL_UNLEASED_STALE_MINUTES = env_int("MASSMAIL_UNLEASED_STALE_MINUTES", 15)
# A receiving domain that answers 421 or 4.7.28 (or this many temporary failures in a
# row) is paused for this long; Gmail asks for at least 10 minutes.
MASSMAIL_DOMAIN_PAUSE_MINUTES = env_int("MASSMAIL_DOMAIN_PAUSE_MINUTES", 10)
MASSMAIL_DOMAIN_FAILURES_IN_A_ROW = env_int("MASSMAIL_DOMAIN_FAILURES_IN_A_ROW", 10)
# After a domain's pause: one connection at a time, this many a minute, doubled each minute.
MASSMAIL_DOMAIN_RAMP_MINUTES = env_int("MASSMAIL_DOMAIN_RAMP_MINUTES", 30)
MASSMAIL_DOMAIN_RAMP_START = env_int("MASSMAIL_DOMAIN_RAMP_START", 50)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "config.apps.ScheduledJobsConfig",
    "targets",
    "campaigns",
    "massmail",
    "tracking",
    "bounces",
    "subscriptions",
    "api",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'massmail.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file in development: wait for locks.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The statistics index's INCLUDE columns are a PostgreSQL speed-up; SQLite
    # builds the index without them, which is all development needs.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# Email delivery. "outbox" (default) writes each message as an .eml file under
# var/outbox/; "smtp" uses EMAIL_HOST & co.; any other value is a backend path,
# e.g. anymail.backends.sendgrid.EmailBackend, configured by ANYMAIL_* variables.
_email_backend = env_str("EMAIL_BACKEND", "outbox")
EMAIL_BACKEND = {
    "outbox": "massmail.outbox.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
}.get(_email_backend, _email_backend)
EMAIL_OUTBOX_DIR = Path(env_str("EMAIL_OUTBOX_DIR", str(VAR_DIR / "outbox")))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Massmail <news@example.com>")
SERVER_EMAIL = env_str("SERVER_EMAIL", "massmail@example.com")
# ANYMAIL_SENDGRID_API_KEY=... becomes ANYMAIL["SENDGRID_API_KEY"].
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_") and key != "ANYMAIL_SETTINGS_JSON"
}
ANYMAIL.update(json.loads(env_str("ANYMAIL_SETTINGS_JSON", "{}")))

# Optional DKIM signing of mass email (PEM private key file, selector, domain).
DKIM_PRIVATE_KEY_PATH = env_str("DKIM_PRIVATE_KEY_PATH")
DKIM_SELECTOR = env_str("DKIM_SELECTOR")
DKIM_DOMAIN = env_str("DKIM_DOMAIN")

# Bounce mailboxes: a message not classified within this many seconds is recorded as
# unreadable and filed away, so one hostile message cannot stall the poller.
BOUNCE_TIME_BUDGET_SECONDS = float(env_str("BOUNCE_TIME_BUDGET_SECONDS", "10"))

# Celery: Redis when CELERY_BROKER_URL is set, else a broker that needs no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Kombu's default is "control" in the current directory.
        "control_folder": str(_broker_dir / "control"),
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
    # Not prefork: without an event loop (this broker has none) prefork's children share
    # one pipe under a semaphore that an idle child holds while it waits; a child killed
    # by SIGKILL never releases it and every replacement hangs on it for good. Threads
    # leave no lock behind: the worker lives or dies as one process.
    CELERY_WORKER_POOL = "threads"
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY", 3600)}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Target types usable in target lists, in queue order. Each is "app_label.Model"
# and its kind, "person" or "company". Deployments add their own models in
# MASSMAIL_CUSTOM_TARGET_TYPES ("app.Model:person,app.Other:company").
MASSMAIL_TARGET_TYPES = [
    ("targets.Account", "company"),
    ("targets.Contact", "person"),
    ("targets.Lead", "person"),
    ("auth.User", "person"),
]
MASSMAIL_CUSTOM_TARGET_TYPES = [
    tuple(item.split(":", 1)) for item in env_list("MASSMAIL_CUSTOM_TARGET_TYPES")
]

# The REST API (api/): a token per user, the admin roles' model permissions.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        # The browsable API and the docs page, for someone logged in to the admin.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.RolePermissions"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pages",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 100),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "massmail API",
    "DESCRIPTION": "Target lists, contacts and leads, templates, campaigns, mass emails, "
    "statistics and the campaign log. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    # Behind a proxy that terminates TLS, BEHIND_PROXY=1 is what tells https apart.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # HSTS is remembered by browsers for this long, so it is the operator's choice.
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
