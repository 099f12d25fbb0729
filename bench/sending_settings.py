"""Settings for bench/bench_sending.py: the project's, plus django-post-office (the baseline)."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
# Batches of 1,000 (the default 100 forks two processes per 100 messages).
POST_OFFICE = {
    "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
    "BATCH_SIZE": 1000,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"handlers": [], "level": "WARNING"},
    "loggers": {"post_office": {"handlers": [], "level": "WARNING", "propagate": False}},
}
