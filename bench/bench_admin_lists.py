"""How fast the admin's contact list pages with 100,000 contacts on PostgreSQL.

Seeds a dedicated database set-based (generate_series), then times the contact
change list (first page, a deep page, a name search, an address search) as the
admin serves it, against a naive admin of the same model in the same run: the
primary address read per row through the model property and the account without
select_related, the N+1 pattern the real admin avoids.

    .venv/bin/python bench/bench_admin_lists.py [--contacts 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
benchdb.use_database("admin")

import django  # noqa: E402

django.setup()

from django.contrib import admin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import path  # noqa: E402

from targets.models import Contact  # noqa: E402


def seed(n: int) -> None:
    if Contact.objects.count() >= n:
        return
    ct = ContentType.objects.get_for_model(Contact).pk
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE targets_contact, targets_account, targets_emailaddress,"
            " targets_recordemailaddress RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "INSERT INTO targets_account (name, website, industry, phone, city, country,"
            " created_at) SELECT 'Account ' || g, '', 'Industry ' || (g %% 20), '', 'City', "
            "'Country ' || (g %% 30), now() FROM generate_series(1, %s) g",
            [n // 20],
        )
        cur.execute(
            "INSERT INTO targets_contact (salutation, first_name, last_name, title, phone, city,"
            " country, created_at, account_id) SELECT '', 'First' || g, 'Last' || g, '', '',"
            " 'City', 'Country ' || (g %% 30), now() - (g || ' minutes')::interval,"
            " 1 + (g %% %s) FROM generate_series(1, %s) g",
            [n // 20, n],
        )
        cur.execute(
            "INSERT INTO targets_emailaddress (address, opt_out, invalid, created_at, updated_at)"
            " SELECT 'contact' || g || '@example.com', false, false, now(), now()"
            " FROM generate_series(1, %s) g",
            [n],
        )
        cur.execute(
            "INSERT INTO targets_recordemailaddress (content_type_id, object_id,"
            ' email_address_id, "primary") SELECT %s, g, g, true FROM generate_series(1, %s) g',
            [ct, n],
        )
        cur.execute("ANALYZE")


class NaiveContactAdmin(admin.ModelAdmin):
    """The same columns without the care: a query per row for the address and account."""

    list_display = ["name", "email", "account", "title", "city", "country", "created_at"]
    search_fields = ["last_name", "first_name", "email_address_links__email_address__address"]
    list_per_page = 50


def timed(client: Client, url: str, runs: int = 7) -> tuple[float, int]:
    client.get(url)  # warm caches and connection
    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - start)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), len(queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seed(args.contacts)
    print(
        f"seeded {Contact.objects.count():,} contacts in {time.perf_counter() - started:.1f} s"
        f" (PostgreSQL, {os.cpu_count()} cores)"
    )
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    pages = {
        "first page": "",
        "page 1,000": "?p=1000",
        "name search": "?q=Last99999",
        "address search": "?q=contact99999@example.com",
    }
    real = {label: timed(client, "/admin/targets/contact/" + q) for label, q in pages.items()}

    # A second admin site serves the naive admin in the same process and database.
    naive_site = admin.AdminSite(name="naive")
    naive_site.register(Contact, NaiveContactAdmin)
    urls = types.ModuleType("bench_naive_urls")
    urls.urlpatterns = [path("admin/", naive_site.urls)]
    sys.modules[urls.__name__] = urls
    with override_settings(ROOT_URLCONF=urls.__name__):
        naive = {
            label: timed(client, "/admin/targets/contact/" + q, runs=3)
            for label, q in pages.items()
        }

    print(
        f"{'contact list':<16}{'massmail':>12}{'queries':>9}{'naive':>12}{'queries':>9}"
        f"{'speed-up':>10}"
    )
    for label in pages:
        (t, q), (nt, nq) = real[label], naive[label]
        print(f"{label:<16}{t * 1000:>10.1f}ms{q:>9}{nt * 1000:>10.1f}ms{nq:>9}{nt / t:>9.1f}x")


if __name__ == "__main__":
    main()
