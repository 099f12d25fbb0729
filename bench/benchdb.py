"""What every PostgreSQL bench shares: its own database, created when missing.

Call `use_database(name)` before `django.setup()`; the bench then runs on
massmail_bench_<name> (unless DATABASE_URL says otherwise), with var/ under /tmp.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_database(name: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault(
        "DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/massmail_bench_{name}"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("MASSMAIL_VAR_DIR", f"/tmp/massmail-bench-{name}")


def ensure_database() -> None:
    """Create the bench's database on the server if it does not exist yet."""
    import psycopg
    from django.db import connection

    name = connection.settings_dict["NAME"]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone():
            c.execute(f'CREATE DATABASE "{name}"')


def admin_client():
    """A Django test client logged in as a superuser (after django.setup())."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def give_contacts_addresses(cur, contact_type_id: int) -> None:
    """Every contact of the bench database gets its primary address contact<id>@example.com."""
    cur.execute(
        "INSERT INTO targets_emailaddress (address, opt_out, invalid, created_at, updated_at)"
        " SELECT 'contact' || id || '@example.com', false, false, now(), now()"
        " FROM targets_contact"
    )
    cur.execute(
        "INSERT INTO targets_recordemailaddress (content_type_id, object_id,"
        ' email_address_id, "primary") SELECT %s, c.id, e.id, true FROM targets_contact c'
        " JOIN targets_emailaddress e ON e.address = 'contact' || c.id || '@example.com'",
        [contact_type_id],
    )
