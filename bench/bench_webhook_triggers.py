"""What the webhook triggers cost the hot writes, on PostgreSQL.

The outbox is written by triggers on the campaign log and the tracked hits, so
every Sent entry the engine writes and every hit the endpoints keep runs one. This
times, in the same run, N single-row INSERTs of a Sent log entry and of a click
hit, inside one transaction per phase (a commit's flush costs the same with or
without the trigger and, on a shared machine, varies more than the trigger costs):

- triggers disabled (the baseline: what the write cost before webhooks);
- triggers on, no endpoint registered (every deployment that does not use them);
- one endpoint subscribed to sent and clicked; three endpoints.

Phases alternate for --rounds rounds and each figure is the median.

    .venv/bin/python bench/bench_webhook_triggers.py [--rows 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from statistics import median

import benchdb

benchdb.use_database("webhooks")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from massmail.models import QueueItem  # noqa: E402
from tests.factories import make_contact, make_mass_email, make_tracking_url  # noqa: E402
from webhooks.models import WebhookEndpoint, WebhookEvent  # noqa: E402

LOG_SQL = (
    "INSERT INTO campaigns_campaignlogrecord (action, action_date, campaign_id, mass_email_id,"
    " queue_item_id, content_type_id, object_id, email_address, bounce_type, is_test)"
    " VALUES ('sent', now(), %s, %s, %s, %s, %s, %s, '', false)"
)
HIT_SQL = (
    "INSERT INTO tracking_hit (queue_item_id, kind, tracking_url_id, at, method, user_agent,"
    " is_machine, machine_reason)"
    " VALUES (%s, 'click', %s, now(), 'GET', 'Mozilla/5.0 X', false, '')"
)


def setup_rows():
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE campaigns_campaignlogrecord, tracking_hit, webhooks_webhookevent,"
            " webhooks_webhookendpoint RESTART IDENTITY CASCADE"
        )
    contact = make_contact()
    mass_email = make_mass_email()
    item = QueueItem.objects.create(
        mass_email=mass_email,
        content_type_id=None,
        object_id=contact.pk,
        email_address=contact.primary_email,
        status="sent",
        sent_at=timezone.now(),
    )
    url = make_tracking_url(mass_email.campaign)
    return mass_email, item, url, contact


def time_inserts(rows: int, mass_email, item, url, contact) -> tuple[float, float]:
    log_params = [mass_email.campaign_id, mass_email.pk, None, None, contact.pk, contact.email]
    results = []
    for sql, params in ((LOG_SQL, log_params), (HIT_SQL, [item.pk, url.pk])):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cur:
            for _ in range(rows):
                cur.execute(sql, params)
        results.append((time.perf_counter() - started) / rows * 1e6)
    return results[0], results[1]


def set_triggers(enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cur:
        cur.execute(f"ALTER TABLE campaigns_campaignlogrecord {verb} TRIGGER webhooks_log")
        cur.execute(f"ALTER TABLE tracking_hit {verb} TRIGGER webhooks_hit")


def set_endpoints(count: int) -> None:
    WebhookEndpoint.objects.all().delete()
    for n in range(count):
        WebhookEndpoint.objects.create(
            name=f"E{n}", url="https://x.example/", event_types=["sent", "clicked"]
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    objects = setup_rows()
    phases = {
        "triggers disabled (baseline)": (False, 0),
        "triggers on, no endpoint": (True, 0),
        "1 endpoint subscribed": (True, 1),
        "3 endpoints subscribed": (True, 3),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in phases}
    try:
        for _ in range(args.rounds):
            for name, (enabled, endpoints) in phases.items():
                set_triggers(enabled)
                set_endpoints(endpoints)
                samples[name].append(time_inserts(args.rows, *objects))
    finally:
        set_triggers(True)
    assert WebhookEvent.objects.count() > 0
    figures = {
        name: (median(s[0] for s in rows), median(s[1] for s in rows))
        for name, rows in samples.items()
    }
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, PostgreSQL {connection.pg_version // 10000},"
        f" load average {load} (other work on the machine slows every figure alike)"
    )
    print(
        f"{args.rows:,} single-row INSERTs per phase, median of {args.rounds} rounds;"
        " microseconds per row"
    )
    base_log, base_hit = figures["triggers disabled (baseline)"]
    print(f"{'':34} {'Sent log entry':>16} {'click hit':>16}")
    for name, (log_us, hit_us) in figures.items():
        print(
            f"{name:34} {log_us:9.0f} ({log_us / base_log:4.2f}x)"
            f" {hit_us:9.0f} ({hit_us / base_hit:4.2f}x)"
        )


if __name__ == "__main__":
    main()
