"""How fast the campaign page opens with a million log records on PostgreSQL.

Seeds a dedicated database set-based (generate_series): one campaign, one mass
email, N recipients (contacts, addresses, queue items) and about 2N log records
(sent N, opened 0.6N, clicked 0.3N over three links, opted out, hard and soft
bounces, leads created) spread over ten days, plus raw hits (opens and clicks,
a quarter of them machines). Then times the admin change page as the admin
serves it (statistics, chart, best links, first log page), a filtered log page,
and, as the baseline in the same run, the same statistics computed by a Python
loop over the log rows (what a naive implementation does). The figures by people (from the raw
hits) are served by a separate JSON request the page makes once it is shown;
it is timed apart.

    .venv/bin/python bench/bench_campaign_page.py [--recipients 500000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
benchdb.use_database("stats")
os.environ.setdefault("DEBUG", "0")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from campaigns.log import create_target_list_from_log  # noqa: E402
from campaigns.models import Campaign, CampaignLogRecord, EmailTemplate  # noqa: E402
from campaigns.statistics import campaign_statistics  # noqa: E402
from massmail.models import MassEmail, OutboundSettings  # noqa: E402
from targets.models import Contact  # noqa: E402


def seeded_campaign(n: int) -> Campaign:
    campaign = Campaign.objects.filter(name=f"Bench log {n}").first()
    if campaign is not None:
        return campaign
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE campaigns_campaign, targets_contact, targets_emailaddress,"
            " massmail_queueitem, campaigns_campaignlogrecord RESTART IDENTITY CASCADE"
        )
    campaign = Campaign.objects.create(name=f"Bench log {n}", type=Campaign.Type.NEWSLETTER)
    template = EmailTemplate.objects.create(name="Bench", subject="Hi", body_html="<p>Hi</p>")
    mass_email = MassEmail.objects.create(
        campaign=campaign,
        name="Bench mail",
        start_at="2026-03-01T08:00:00Z",
        email_template=template,
        status=MassEmail.Status.COMPLETE,
    )
    links = [
        campaign.tracking_urls.create(name=f"Link {i}", url=f"https://example.org/{i}")
        for i in range(3)
    ]
    started = time.perf_counter()
    _seed_rows(n, campaign.pk, mass_email.pk, template.pk, [link.pk for link in links])
    print(f"seeded {n:,} recipients in {time.perf_counter() - started:.1f} s")
    return campaign


def _seed_rows(n: int, campaign_id: int, mass_email_id: int, template_id: int, links: list) -> None:
    ct = ContentType.objects.get_for_model(Contact).pk
    statements = [
        (
            "INSERT INTO targets_contact (salutation, first_name, last_name, title, phone, city,"
            " country, created_at) SELECT '', 'First' || g, 'Last' || g, '', '', '', '', now()"
            " FROM generate_series(1, %(n)s) g",
        ),
        (
            "INSERT INTO targets_emailaddress (address, opt_out, invalid, created_at, updated_at)"
            " SELECT 'r' || g || '@example.com', false, false, now(), now()"
            " FROM generate_series(1, %(n)s) g",
        ),
        # Queue item g is contact g at address g, sent at a time spread over ten days.
        (
            "INSERT INTO massmail_queueitem (uid, mass_email_id, content_type_id, object_id,"
            " email_address_id, status, attempt_count, last_error, claimed_by, message_id,"
            " is_test, created_at, sent_at) SELECT gen_random_uuid(), %(me)s, %(ct)s, g, g,"
            " 'sent', 1, '', '', '', false, now(), timestamptz '2026-03-01 08:00+00'"
            " + (g * interval '864 seconds' / %(n)s * 1000) FROM generate_series(1, %(n)s) g",
        ),
    ]
    log_columns = (
        "INSERT INTO campaigns_campaignlogrecord (action, action_date, campaign_id,"
        " mass_email_id, queue_item_id, content_type_id, object_id, tracking_url_id,"
        " email_template_id, email_address, bounce_type, is_test)"
    )
    # (action, share of recipients, minutes after sending, tracking URL expr, bounce type)
    shares = [
        ("sent", "true", "0", "NULL", "''"),
        ("opened", "q.id %% 10 < 6", "30 + q.id %% 2000", "NULL", "''"),
        ("clicked", "q.id %% 10 < 3", "45 + q.id %% 2000", f"{links[0]} + q.id %% 3", "''"),
        ("opted_out", "q.id %% 50 = 7", "60", "NULL", "''"),
        ("bounced", "q.id %% 50 = 9", "2", "NULL", "'hard'"),
        ("bounced", "q.id %% 100 = 11", "5", "NULL", "'soft'"),
    ]
    for action, where, minutes, url, bounce in shares:
        statements.append(
            (
                f"{log_columns} SELECT '{action}', q.sent_at + ({minutes}) * interval '1 minute',"
                f" %(c)s, %(me)s, q.id, %(ct)s, q.object_id, {url}, %(t)s,"
                f" 'r' || q.id || '@example.com', {bounce}, false"
                f" FROM massmail_queueitem q WHERE {where}",
            )
        )
    statements += [
        (
            f"{log_columns} SELECT 'lead_created', timestamptz '2026-03-02 00:00+00'"
            " + g * interval '1 minute', %(c)s, NULL, NULL, NULL, NULL, NULL, NULL, '', '',"
            " false FROM generate_series(1, %(n)s / 20) g",
        ),
        # Raw hits: an open for every opener, a click per click; every fourth one a machine.
        (
            "INSERT INTO tracking_hit (queue_item_id, kind, tracking_url_id, at, method,"
            " user_agent, is_machine, machine_reason) SELECT queue_item_id,"
            " CASE action WHEN 'opened' THEN 'open' ELSE 'click' END, tracking_url_id,"
            " action_date, 'GET', 'bench', queue_item_id %% 4 = 0, ''"
            " FROM campaigns_campaignlogrecord WHERE action IN ('opened', 'clicked')",
        ),
    ]
    params = {"n": n, "me": mass_email_id, "ct": ct, "c": campaign_id, "t": template_id}
    with connection.cursor() as cur:
        for (sql,) in statements:
            cur.execute(sql, params)
        cur.execute("VACUUM ANALYZE")


def python_loop_statistics(campaign: Campaign) -> dict[str, int]:
    """The baseline: every log row into Python, counted in sets."""
    seen: dict[str, set] = {key: set() for key in ("opened", "clicked", "opted_out")}
    counts = {"sent": 0, "bounced_hard": 0, "bounced_soft": 0, "leads_created": 0}
    rows = CampaignLogRecord.objects.filter(campaign=campaign).values_list(
        "action", "queue_item_id", "bounce_type", "is_test"
    )
    for action, item, bounce, is_test in rows.iterator(chunk_size=5000):
        if is_test:
            continue
        if action == "sent":
            counts["sent"] += 1
        elif action in seen:
            seen[action].add(item)
        elif action == "bounced":
            counts[f"bounced_{bounce}"] += 1
        elif action == "lead_created":
            counts["leads_created"] += 1
    return {**counts, **{key: len(items) for key, items in seen.items()}}


def timed(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    campaign = seeded_campaign(args.recipients)
    settings = OutboundSettings.load()
    settings.open_tracking = True
    settings.save()
    log_rows = CampaignLogRecord.objects.filter(campaign=campaign).count()
    print(f"campaign log records: {log_rows:,}")

    user = get_user_model().objects.filter(username="bench").first()
    user = user or get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])

    def page(query: str = "") -> None:
        response = client.get(url + query)
        assert response.status_code == 200, response.status_code

    page()  # warm-up: templates, content types, connection
    page_median, page_times = timed(page, args.runs)
    opened_median, _ = timed(lambda: page("?log=opened&log_page=40"), args.runs)
    people_url = reverse("admin:campaigns_campaign_people", args=[campaign.pk])
    people_median, _ = timed(lambda: client.get(people_url).json(), args.runs)
    stats_median, _ = timed(lambda: campaign_statistics(campaign, with_people=False), args.runs)
    loop_started = time.perf_counter()
    loop = python_loop_statistics(campaign)
    loop_time = time.perf_counter() - loop_started

    stats = campaign_statistics(campaign)
    aggregate = {key: getattr(stats, key) for key in loop}
    assert aggregate == loop, (aggregate, loop)
    print(f"figures (aggregate == Python loop): {aggregate}")
    print(f"people: opened {stats.opened_by_people:,}, clicked {stats.clicked_by_people:,}")
    print(
        f"campaign page (stats, chart, links, log page 1): median {page_median * 1000:.0f} ms"
        f" over {args.runs} runs ({', '.join(f'{t * 1000:.0f}' for t in page_times)} ms)"
    )
    print(f"campaign page, log filtered 'opened', page 40: median {opened_median * 1000:.0f} ms")
    print(f"figures by people (JSON fetched by the page): median {people_median * 1000:.0f} ms")
    print(f"statistics by aggregates alone: median {stats_median * 1000:.0f} ms")
    print(f"baseline, statistics by a Python loop over the rows: {loop_time * 1000:.0f} ms")
    print(
        f"ratio loop / aggregates: {loop_time / stats_median:.1f}x;"
        f" loop / whole page: {loop_time / page_median:.1f}x"
    )
    print(f"retargeting: {list_from_log(campaign)}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores; load average {load} (shared with other work)")


def list_from_log(campaign: Campaign) -> str:
    """Sent but did not click: one INSERT ... SELECT over the million rows, then undone."""
    started = time.perf_counter()
    target_list, added = create_target_list_from_log(
        campaign, ["sent"], ["clicked"], name=f"Bench list {time.time_ns()}"
    )
    elapsed = time.perf_counter() - started
    target_list.delete()
    return f"target list of {added:,} members (sent, not clicked) in {elapsed * 1000:.0f} ms"


if __name__ == "__main__":
    main()
