"""How fast the REST API adds 10,000 addresses to a target list in one call, on PostgreSQL.

Seeds a dedicated database set-based (contacts with a primary address each), then
times, in the same run, over real HTTP-shaped requests through Django's test client
with a token (authentication, permissions, JSON parsing, the view):
- POST /api/target-lists/{id}/members/ with 10,000 addresses (goal: <= 5 s);
- the same call again (every address already a member: nothing changes);
- POST .../members/remove/ with the 10,000 addresses;
- the baseline: a per-row loop as a client without the set-based call would do it
  in-process (look the address's record up, `target_list.add(record)`), over a
  sample, extrapolated to 10,000.

    .venv/bin/python bench/bench_api_members.py [--addresses 10000] [--sample 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import benchdb

benchdb.use_database("api")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from targets.models import Contact, RecordEmailAddress, TargetList  # noqa: E402


def seed(contacts: int) -> None:
    ct = ContentType.objects.get_for_model(Contact).pk
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE targets_contact, targets_emailaddress, targets_recordemailaddress,"
            " targets_targetlistmember, targets_targetlist RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "INSERT INTO targets_contact (salutation, first_name, last_name, title, phone, city,"
            " country, created_at) SELECT '', 'First' || g, 'Last' || g, '', '', '', '', now()"
            " FROM generate_series(1, %s) g",
            [contacts],
        )
        benchdb.give_contacts_addresses(cur, ct)
        cur.execute("ANALYZE")


def api_client() -> APIClient:
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def timed_post(client: APIClient, url: str, addresses: list[str]) -> tuple[float, dict]:
    body = json.dumps({"addresses": addresses})
    started = time.perf_counter()
    response = client.post(url, body, content_type="application/json")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.content[:500]
    return elapsed, response.json()


def time_row_loop(addresses: list[str]) -> float:
    target_list = TargetList.objects.create(name="Row loop")
    started = time.perf_counter()
    for address in addresses:
        link = RecordEmailAddress.objects.get(email_address__address=address, primary=True)
        target_list.add(link.record)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=1_000)
    args = parser.parse_args()
    n = args.addresses
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    seed(n * 10)  # the addresses are a tenth of the contacts
    addresses = [f"contact{pk}@example.com" for pk in range(1, n * 10 + 1, 10)]
    client = api_client()
    target_list = TargetList.objects.create(name="API")
    url = f"/api/target-lists/{target_list.pk}/members/"

    add_seconds, added = timed_post(client, url, addresses)
    assert added["added"] == n and not added["addresses_not_found"], added["added"]
    again_seconds, again = timed_post(client, url, addresses)
    assert again["added"] == 0
    remove_seconds, removed = timed_post(client, f"{url}remove/", addresses)
    assert removed["removed"] == n
    loop_seconds = time_row_loop(addresses[: args.sample])
    loop_total = loop_seconds / args.sample * n

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, PostgreSQL {connection.pg_version // 10000},"
        f" load average {load} (other work on the machine slows every figure alike)"
    )
    print(f"contacts: {n * 10:,}; addresses in the call: {n:,}")
    print(f"API add {n:,} addresses, one call:      {add_seconds:6.2f} s (goal: <= 5 s)")
    print(f"API add again (all already members):   {again_seconds:6.2f} s")
    print(f"API remove {n:,} addresses, one call:   {remove_seconds:6.2f} s")
    print(
        f"baseline per-row loop (lookup + add): {args.sample:,} in {loop_seconds:.2f} s"
        f" -> {loop_total:,.1f} s for {n:,}"
    )
    print(f"ratio (per-row loop / API call): {loop_total / add_seconds:,.1f}x faster")


if __name__ == "__main__":
    main()
