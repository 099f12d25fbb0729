"""End-to-end sending speed: queued items -> accepted by a local SMTP sink, on PostgreSQL.

In the same run, against the same fast sink (bench/fast_sink.py, its own process):
- the engine: massmail.sending.tick() in 2 worker processes, cap set high;
- django-post-office (what a Django user would pick): send_many() of the same
  personalised messages, then send_queued_mail_until_done(processes=2), timed;
- the raw ceiling: the engine's prebuilt messages sent with smtplib, one connection per
  process, 2 processes;
- a worker's peak RSS sending 100,000 items vs 10,000 (each in a fresh process).

    .venv/bin/python bench/bench_sending.py [--items 10000] [--rss-large 100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.sending_settings")
benchdb.use_database("sending")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "0")  # as in production: no per-query log in memory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink() -> tuple[subprocess.Popen, int]:
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fast_sink.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout.readline().startswith("listening"), "the sink did not start"
    return sink, port


if "--rss-worker" not in sys.argv:
    SINK, PORT = start_sink()
    os.environ["EMAIL_HOST"], os.environ["EMAIL_PORT"] = "127.0.0.1", str(PORT)

import django  # noqa: E402

django.setup()

from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns.models import Campaign, EmailTemplate  # noqa: E402
from massmail.composition import prepare  # noqa: E402
from massmail.models import MassEmail, OutboundSettings, QueueItem  # noqa: E402
from massmail.queue import build_queue  # noqa: E402
from massmail.recipients import recipient_contexts  # noqa: E402
from massmail.sending import tick  # noqa: E402
from targets.models import Contact, TargetList  # noqa: E402
from tracking.models import TrackingUrl  # noqa: E402


def seed(contacts: int, lists: dict[str, int]) -> None:
    """`contacts` contacts with an address each; lists holding the first n of them."""
    ct = ContentType.objects.get_for_model(Contact).pk
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE targets_contact, targets_emailaddress, targets_recordemailaddress,"
            " targets_targetlistmember, targets_targetlist, massmail_queueitem,"
            " massmail_massemail, campaigns_campaign, campaigns_emailtemplate,"
            " campaigns_campaignlogrecord, post_office_email, post_office_log"
            " RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "INSERT INTO targets_contact (salutation, first_name, last_name, title, phone,"
            " city, country, created_at) SELECT '', 'First' || g, 'Last' || g, '', '', 'City',"
            " 'Country', now() FROM generate_series(1, %s) g",
            [contacts],
        )
        cur.execute(
            "INSERT INTO targets_emailaddress (address, opt_out, invalid, created_at,"
            " updated_at) SELECT 'contact' || id || '@example.com', false, false, now(), now()"
            " FROM targets_contact"
        )
        cur.execute(
            "INSERT INTO targets_recordemailaddress (content_type_id, object_id,"
            ' email_address_id, "primary") SELECT %s, c.id, e.id, true FROM targets_contact c'
            " JOIN targets_emailaddress e ON e.address = 'contact' || c.id || '@example.com'",
            [ct],
        )
        for name, size in lists.items():
            target_list = TargetList.objects.create(name=name)
            cur.execute(
                "INSERT INTO targets_targetlistmember (target_list_id, content_type_id,"
                " object_id, opted_out, added_at) SELECT %s, %s, id, false, now()"
                " FROM targets_contact WHERE id <= %s",
                [target_list.pk, ct, size],
            )
        cur.execute("ANALYZE")


def newsletter_html(campaign: Campaign) -> str:
    """About 20 KB of HTML with personal fields and tracked links, like a real newsletter."""
    links = [
        TrackingUrl.objects.create(campaign=campaign, name=f"Link {n}", url=f"https://e.org/{n}")
        for n in range(3)
    ]
    paragraph = (
        "<p style='font-family:Arial,sans-serif;font-size:14px;color:#333'>Lorem ipsum dolor"
        " sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et"
        " dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco"
        " laboris nisi ut aliquip ex ea commodo consequat.</p>\n"
    )
    parts = ["<h1>Hello {Person.firstName}!</h1>"]
    for n in range(45):
        parts.append(paragraph)
        if n % 15 == 0:
            parts.append(f'<p><a href="{{trackingUrl:{links[n // 15].pk}}}">Read more</a></p>')
    parts.append("<p>Regards, the team. You are {Person.name} at {emailAddress}.</p>")
    return "".join(parts)


def make_mass_email(list_name: str) -> MassEmail:
    campaign = Campaign.objects.create(name=f"Bench {list_name}", type=Campaign.Type.NEWSLETTER)
    template = EmailTemplate.objects.create(
        name=list_name, subject="News for {Person.firstName}", body_html=newsletter_html(campaign)
    )
    mass_email = MassEmail.objects.create(
        campaign=campaign,
        name=list_name,
        start_at=timezone.now(),
        email_template=template,
        from_address="news@example.com",
        from_name="Bench News",
    )
    mass_email.target_lists.set([TargetList.objects.get(name=list_name)])
    build_queue(mass_email.pk)
    return mass_email


def in_processes(target, args_list: list[tuple]) -> tuple[float, list]:
    """Run target(*args) in forked processes started together; (wall seconds, results)."""
    connections.close_all()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(args_list))
    results = context.Queue()

    def run(*args) -> None:
        connections.close_all()
        barrier.wait()
        started = time.perf_counter()
        value = target(*args)
        results.put((started, time.perf_counter(), value))

    processes = [context.Process(target=run, args=args) for args in args_list]
    for process in processes:
        process.start()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return max(o[1] for o in outcomes) - min(o[0] for o in outcomes), [o[2] for o in outcomes]


def engine_worker() -> int:
    return tick().sent


def bench_engine(mass_email: MassEmail) -> tuple[float, int]:
    elapsed, sent = in_processes(engine_worker, [(), ()])
    assert mass_email.queue_items.filter(status=QueueItem.Status.SENT).count() == sum(sent)
    return elapsed, sum(sent)


def reset_for_another_round(mass_email: MassEmail) -> None:
    """The same queue, unsent again: every item Pending, no log, no lease, no bloat."""
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE massmail_queueitem SET status = 'pending', claimed_by = '', claimed_at = NULL,"
            " sent_at = NULL, message_id = '', attempt_count = 0, last_error = ''"
            " WHERE mass_email_id = %s",
            [mass_email.pk],
        )
        cur.execute("TRUNCATE campaigns_campaignlogrecord")
        cur.execute("SELECT to_regclass('massmail_senderlease')")
        if cur.fetchone()[0]:  # a tree from before sender leases has no such table
            cur.execute("DELETE FROM massmail_senderlease")
    MassEmail.objects.filter(pk=mass_email.pk).update(status=MassEmail.Status.IN_PROCESS)
    connection.close()
    with connection.cursor() as cur:  # VACUUM cannot run in a transaction: autocommit
        cur.execute("VACUUM ANALYZE massmail_queueitem")
        cur.execute("VACUUM ANALYZE campaigns_campaignlogrecord")


def serve_rounds(items: int) -> None:
    """For bench_sending_baseline.py: seed once, then one engine run per "run" line read,
    each answered with a line of JSON; the engine in the same warm state every round."""
    speed = make_mass_email("Speed")
    raw_rate = None
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        reset_for_another_round(speed)
        engine_s, engine_n = bench_engine(speed)
        if raw_rate is None:
            raw_s, raw_n = bench_raw(prebuilt(speed))
            raw_rate = raw_n / raw_s
        print(json.dumps({"engine": engine_n / engine_s, "raw": raw_rate}), flush=True)


def prebuilt(mass_email: MassEmail):
    """Every item's composed message, outside any timing."""
    prepared = prepare(mass_email, outbound=OutboundSettings.load())
    items = list(mass_email.queue_items.select_related("email_address").order_by("id"))
    contexts = recipient_contexts(items)
    return [prepared.render(item, contexts[item.id]) for item in items]


def raw_sender(messages: list[tuple[str, str, bytes]]) -> int:
    smtp = smtplib.SMTP("127.0.0.1", PORT)
    for mail_from, rcpt_to, raw in messages:
        smtp.sendmail(mail_from, [rcpt_to], raw)
    smtp.quit()
    return len(messages)


def bench_raw(rendered) -> tuple[float, int]:
    messages = [(r.mail_from, r.rcpt_to, r.raw) for r in rendered]
    halves = [(messages[0::2],), (messages[1::2],)]
    elapsed, counts = in_processes(raw_sender, halves)
    return elapsed, sum(counts)


def bench_post_office(rendered, batch_size: int) -> tuple[float, int]:
    from django.conf import settings
    from post_office import mail
    from post_office.models import STATUS, Email

    Email.objects.all().delete()
    settings.POST_OFFICE = {**settings.POST_OFFICE, "BATCH_SIZE": batch_size}

    logging.getLogger("post_office").handlers.clear()  # it logs every batch at INFO
    logging.getLogger("post_office").setLevel(logging.WARNING)

    mail.send_many(
        [
            {
                "sender": r.headers["From"],
                "recipients": [r.rcpt_to],
                "subject": r.subject,
                "message": r.text,
                "html_message": r.html,
                "headers": {
                    k: v for k, v in r.headers.items() if k not in ("From", "To", "Subject")
                },
            }
            for r in rendered
        ]
    )
    connections.close_all()
    started = time.perf_counter()
    mail.send_queued_mail_until_done(processes=2)
    elapsed = time.perf_counter() - started
    return elapsed, Email.objects.filter(status=STATUS.sent).count()


def peak_rss_kb() -> int:
    """VmHWM: this process's own peak (ru_maxrss would carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_worker() -> None:
    """Run in a fresh process: one tick, then print the peak RSS in KB."""
    result = tick()
    peak = peak_rss_kb()
    print(json.dumps({"sent": result.sent, "stopped": result.stopped, "maxrss_kb": peak}))


def bench_rss(mass_email: MassEmail) -> tuple[int, int]:
    MassEmail.objects.exclude(pk=mass_email.pk).update(status=MassEmail.Status.COMPLETE)
    env = {**os.environ, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(PORT)}
    output = subprocess.run(
        [sys.executable, __file__, "--rss-worker"], env=env, capture_output=True, text=True
    )
    assert output.returncode == 0, output.stderr
    result = json.loads(output.stdout.strip().splitlines()[-1])
    assert not result["stopped"], result
    return result["sent"], result["maxrss_kb"]


def bench_speed(items: int, *, engine_only: bool = False) -> None:
    speed = make_mass_email("Speed")
    rendered = prebuilt(speed)
    size = sum(len(r.raw) for r in rendered) / len(rendered)
    print(f"message size: {size / 1024:.1f} KB")
    engine_s, engine_n = bench_engine(speed)
    engine_rate = engine_n / engine_s
    print(
        f"engine, 2 worker processes: {engine_n:,} in {engine_s:.2f} s = {engine_rate:,.0f} msg/s"
    )
    raw_s, raw_n = bench_raw(rendered)
    raw_rate = raw_n / raw_s
    print(f"raw ceiling, smtplib, 2 processes: {raw_n:,} in {raw_s:.2f} s = {raw_rate:,.0f} msg/s")
    if engine_only:
        print(f"ratio: engine = {100 * engine_rate / raw_rate:.0f}% of the raw ceiling")
        return
    po_rates = {}
    for label, batch_size in [("defaults, BATCH_SIZE 100", 100), ("BATCH_SIZE 1000", 1000)]:
        po_s, po_n = bench_post_office(rendered, batch_size)
        po_rates[label] = po_n / po_s
        print(
            f"django-post-office ({label}), 2 processes: {po_n:,} in {po_s:.2f} s"
            f" = {po_rates[label]:,.0f} msg/s"
        )
    versus = ", ".join(
        f"{engine_rate / rate:.1f}x with {label}" for label, rate in po_rates.items()
    )
    print(
        f"ratios: engine vs django-post-office: {versus} (goal >= 4x);"
        f" raw ceiling vs post-office tuned: {raw_rate / po_rates['BATCH_SIZE 1000']:.1f}x;"
        f" engine = {100 * engine_rate / raw_rate:.0f}% of the raw ceiling (goal >= 60%);"
        f" {engine_rate:,.0f} msg/s (goal >= 1,500)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rss-small", type=int, default=10_000)
    parser.add_argument("--rss-large", type=int, default=100_000)
    parser.add_argument("--skip-speed", action="store_true", help="only the memory figures")
    parser.add_argument(
        "--engine-only", action="store_true", help="the engine and the raw ceiling, no more"
    )
    parser.add_argument(
        "--serve", action="store_true", help="engine runs on request (bench_sending_baseline.py)"
    )
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    lists = {"Speed": args.items}
    if not (args.engine_only or args.serve):
        lists.update({"RSS small": args.rss_small, "RSS large": args.rss_large})
    seed(max(lists.values()), lists)
    outbound = OutboundSettings.load()
    outbound.max_per_hour, outbound.max_per_batch = 1_000_000_000, None
    outbound.use_verp, outbound.open_tracking = True, True
    outbound.bounce_address = "bounces@example.com"
    outbound.save()
    if args.serve:
        serve_rounds(args.items)
        return
    print(f"2 cores; fast sink on port {PORT}; {args.items:,} messages per contender")

    if not args.skip_speed:
        bench_speed(args.items, engine_only=args.engine_only)
    if args.engine_only:
        return
    small_n, small_kb = bench_rss(make_mass_email("RSS small"))
    large_n, large_kb = bench_rss(make_mass_email("RSS large"))
    print(
        f"peak RSS of one worker: {small_n:,} items {small_kb / 1024:.0f} MB,"
        f" {large_n:,} items {large_kb / 1024:.0f} MB: ratio {large_kb / small_kb:.2f}"
        " (goal <= 1.2)"
    )


if __name__ == "__main__":
    if "--rss-worker" in sys.argv:
        rss_worker()
    else:
        try:
            main()
        finally:
            SINK.terminate()
            print(f"sink: {SINK.communicate(timeout=10)[0].strip().splitlines()[-1]}")
