"""Settings for bench/bench_sending.py: the project's, plus django-post-office (the baseline)."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
# The bench runs post-office with its default BATCH_SIZE (100) and with 1,000.
POST_OFFICE = {"BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"handlers": [], "level": "WARNING"},
    "loggers": {"post_office": {"handlers": [], "level": "WARNING", "propagate": False}},
}
