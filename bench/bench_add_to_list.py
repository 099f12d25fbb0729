"""How fast "Add to target list" adds 100,000 selected contacts on PostgreSQL.

Seeds a dedicated database set-based, then times, in the same run:
- the admin action as a user triggers it: POST to the contact change list filtered
  by country with "select all N results", through the intermediate page's Apply
  (one INSERT ... SELECT from the filtered queryset's SQL);
- the same call of targets.membership.add_selection directly, into a fresh list;
- re-adding the same selection (every row conflicts; nothing changes);
- the baseline: the ORM loop `target_list.add(record)` over a sample, extrapolated.

    .venv/bin/python bench/bench_add_to_list.py [--contacts 100000] [--sample 2000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
benchdb.use_database("targets")

import django  # noqa: E402

django.setup()

from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from targets.membership import add_selection  # noqa: E402
from targets.models import Contact, TargetList  # noqa: E402

COUNTRY = "Selected"


def seed(selected: int) -> None:
    """`selected` contacts in COUNTRY plus 10% others the filter must leave out."""
    ct = ContentType.objects.get_for_model(Contact).pk
    others = selected // 10
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE targets_contact, targets_emailaddress, targets_recordemailaddress,"
            " targets_targetlistmember, targets_targetlist RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "INSERT INTO targets_contact (salutation, first_name, last_name, title, phone, city,"
            " country, created_at) SELECT '', 'First' || g, 'Last' || g, '', '', 'City',"
            " CASE WHEN g <= %s THEN %s ELSE 'Other' END, now() FROM generate_series(1, %s) g",
            [selected, COUNTRY, selected + others],
        )
        benchdb.give_contacts_addresses(cur, ct)
        cur.execute("ANALYZE")


def time_admin_action(client: Client, target_list: TargetList) -> float:
    started = time.perf_counter()
    response = client.post(
        f"/admin/targets/contact/?country={COUNTRY}",
        {
            "action": "add_to_target_list",
            "select_across": "1",
            "_selected_action": ["1"],
            "apply": "1",
            "target_list": str(target_list.pk),
        },
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 302, response.status_code
    return elapsed


def time_call(target_list: TargetList) -> tuple[float, int]:
    started = time.perf_counter()
    added = add_selection(target_list, Contact.objects.filter(country=COUNTRY))
    return time.perf_counter() - started, added


def time_orm_loop(sample: int) -> float:
    target_list = TargetList.objects.create(name="ORM loop")
    records = list(Contact.objects.filter(country=COUNTRY)[:sample])
    started = time.perf_counter()
    for record in records:
        target_list.add(record)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    seed(args.contacts)
    n = args.contacts

    admin_list = TargetList.objects.create(name="Admin action")
    admin_seconds = time_admin_action(benchdb.admin_client(), admin_list)
    assert admin_list.members.count() == n, admin_list.members.count()
    call_seconds, added = time_call(TargetList.objects.create(name="Direct call"))
    assert added == n
    readd_seconds = time_admin_action(benchdb.admin_client(), admin_list)
    loop_seconds = time_orm_loop(args.sample)

    loop_rate = args.sample / loop_seconds
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, PostgreSQL {connection.pg_version // 10000},"
        f" load average {load} (other work on the machine slows every figure alike)"
    )
    print(f"selected contacts: {n:,} (filtered out: {n // 10:,})")
    print(
        f"admin action, select all {n:,}:    {admin_seconds:6.2f} s  {n / admin_seconds:>9,.0f}/s"
    )
    print(f"add_selection() direct:          {call_seconds:6.2f} s  {n / call_seconds:>9,.0f}/s")
    print(f"re-add (all already members):    {readd_seconds:6.2f} s")
    print(
        f"baseline ORM loop target_list.add(): {args.sample:,} in {loop_seconds:.2f} s"
        f" = {loop_rate:,.0f}/s -> {n / loop_rate:,.0f} s for {n:,}"
    )
    print(f"ratio (ORM loop / admin action): {n / loop_rate / admin_seconds:,.0f}x faster")


if __name__ == "__main__":
    main()
