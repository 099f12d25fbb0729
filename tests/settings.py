"""Test settings: the project's, plus a test-only app whose models are custom target types."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, MASSMAIL_CUSTOM_TARGET_TYPES

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
MASSMAIL_CUSTOM_TARGET_TYPES = [
    *MASSMAIL_CUSTOM_TARGET_TYPES,
    ("testapp.Partner", "company"),
    ("testapp.Volunteer", "person"),
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = False
