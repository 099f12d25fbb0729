"""Tracked links and the open pixel under load, against a bare token-checking view.

gunicorn with config/gunicorn.py serves the project on PostgreSQL (a dedicated
bench database, recreated and seeded set-based with N distinct sent queue
items). wrk loads it from this machine, cycling over precomputed distinct URLs,
with a browser user agent:

- bare click: a Django view that only checks the click token and returns the
  same redirect (no database), served by the same gunicorn in the same run;
- click: the real /c/<token>/ (hit + Clicked + Opened, then 302; the hits of
  concurrent requests in a gunicorn process are written together, one
  statement and one commit per batch: tracking/group_commit.py);
- bare click + one insert: the bare view writing one row first, the least any
  design that keeps every answered hit must do (bench/endpoints_urls.py);
- pixel: the real /o/<token>/p.gif, and its bare counterpart;
- click again with asynchronous commit of hit writes (MASSMAIL_HITS_ASYNC_COMMIT=1,
  off by default), to show what that trade-off would buy.

Bare and real runs alternate for --rounds rounds (default 3); each real run's
ratio is taken against the bare run just before it and the median is reported,
because on this shared 2-core machine two runs in a row can differ by 15%.

Afterwards it checks the rules on the database: no errors, every answered
request kept as a Hit (the only slack: requests in flight when wrk stopped),
Clicked once per (item, URL), Opened once per item, no hit called a machine.

    apt-get install -y wrk
    .venv/bin/python bench/bench_endpoints.py [--items 50000] [--duration 30] [--connections 64]

BENCH_DATABASE_URL names the database (dropped and recreated); all traffic goes
to 127.0.0.1 and every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/massmail_tracking_bench"
)
SERVER_ENV = {
    "DATABASE_URL": BENCH_DB,
    "DJANGO_SETTINGS_MODULE": "bench.endpoints_settings",
    "MASSMAIL_ENV": "production",
    "SECRET_KEY": "bench-endpoints-not-a-secret-" + "x" * 40,
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "0",  # plain http on the loopback
    "LOG_LEVEL": "WARNING",
}
os.environ.update(SERVER_ENV)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns.models import Campaign, CampaignLogRecord, EmailTemplate  # noqa: E402
from config import gunicorn as gunicorn_config  # noqa: E402
from massmail.models import MassEmail, OutboundSettings, QueueItem  # noqa: E402
from targets.models import EmailAddress  # noqa: E402
from tracking import links  # noqa: E402
from tracking.models import Hit, TrackingUrl  # noqa: E402

BROWSER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
# Each wrk thread walks its own stride of the URL file, so no two threads send
# the same URL until the list wraps around.
WRK_SCRIPT = """
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  stride = tonumber(args[2])
  position = id
  wrk.headers["User-Agent"] = args[3]
end
function request()
  local path = paths[position]
  position = position + stride
  if position > #paths then position = ((position - 1) % #paths) + 1 end
  return wrk.format("GET", path)
end
"""


# --- database ---


def recreate_database() -> None:
    import psycopg

    parts = urlsplit(BENCH_DB)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)


def seed(items: int) -> tuple[MassEmail, list[TrackingUrl]]:
    """N sent queue items, each with its own address, in two INSERT ... SELECT."""
    OutboundSettings.objects.update_or_create(
        pk=1, defaults={"open_tracking": True, "truncate_ip": True}
    )
    campaign = Campaign.objects.create(name="Bench", type=Campaign.Type.NEWSLETTER)
    template = EmailTemplate.objects.create(name="Bench", subject="Hi", body_html="<p>Hi</p>")
    mass_email = MassEmail.objects.create(
        campaign=campaign,
        name="Bench",
        status=MassEmail.Status.COMPLETE,
        start_at=timezone.now(),
        email_template=template,
    )
    urls = [
        TrackingUrl.objects.create(campaign=campaign, name=name, url=f"https://example.org/{name}")
        for name in ("offer", "news")
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EmailAddress._meta.db_table} (address, opt_out, invalid, created_at,"
            " updated_at) SELECT 'bench' || g || '@example.com', false, false, now(), now()"
            " FROM generate_series(1, %s) AS g",
            [items],
        )
        cursor.execute(
            f"INSERT INTO {QueueItem._meta.db_table} (uid, mass_email_id, email_address_id,"
            " status, attempt_count, last_error, claimed_by, sent_at, message_id, is_test,"
            " created_at) SELECT gen_random_uuid(), %s, e.id, 'sent', 1, '', '',"
            " now() - interval '1 hour', '', false, now()"
            f" FROM {EmailAddress._meta.db_table} e",
            [mass_email.pk],
        )
        cursor.execute("ANALYZE")
    return mass_email, urls


@dataclass(frozen=True)
class Paths:
    click: list[str]
    bare_click: list[str]
    one_insert: list[str]
    pixel: list[str]
    bare_pixel: list[str]


def make_paths(mass_email: MassEmail, urls: list[TrackingUrl]) -> Paths:
    """Distinct URLs: item i gets one of the two tracking URLs, and its pixel."""
    uids = list(mass_email.queue_items.order_by("id").values_list("uid", flat=True))
    click, bare_click, one_insert, pixel, bare_pixel = [], [], [], [], []
    for n, uid in enumerate(uids):
        token = links.click_token(uid, urls[n % 2].pk)
        click.append(f"/c/{token}/")
        bare_click.append(f"/bare/c/{token}/")
        one_insert.append(f"/bare/w/{token}/")
        pixel.append(links.open_pixel_url("", uid))
        bare_pixel.append(f"/bare/o/{links.open_token(uid)}/p.gif")
    rng = random.Random(5)
    for paths in (click, bare_click, one_insert, pixel, bare_pixel):
        rng.shuffle(paths)
    return Paths(click, bare_click, one_insert, pixel, bare_pixel)


# --- server ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def database_backends() -> list[int]:
    """The PostgreSQL backends serving the bench database, except this script's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


class Server:
    """gunicorn with config/gunicorn.py, bound to 127.0.0.1 on a free port."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {**os.environ, **SERVER_ENV, **(extra_env or {})}
        env["GUNICORN_BIND"] = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                str(ROOT / "config" / "gunicorn.py"),
                "--chdir",
                str(ROOT),
                "config.wsgi:application",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tempfile.gettempdir()) / "bench-endpoints-gunicorn.log", "ab"),
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/bare/c/x/", timeout=1)
            except urllib.error.HTTPError:
                return  # 404 for the forged token: Django answers
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start; see bench-endpoints-gunicorn.log in /tmp")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


# --- load ---


@dataclass(frozen=True)
class Load:
    name: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    web_cpu_ms: float = 0.0  # gunicorn CPU per request
    db_cpu_ms: float = 0.0  # PostgreSQL backends' CPU per request
    load_before: float = 0.0  # the machine's 1-minute load average when the run began
    hits_written: int | None = None

    def row(self, baseline: Load | None) -> str:
        ratio = f"{self.rps / baseline.rps:6.2f}" if baseline else "      "
        written = "" if self.hits_written is None else f"  hits written {self.hits_written:>7}"
        return (
            f"{self.name:<24} {self.rps:>6.0f} req/s  p50 {self.p50_ms:>6.1f} ms"
            f"  p99 {self.p99_ms:>6.1f} ms  errors {self.errors}  ratio {ratio}"
            f"  CPU/req web {self.web_cpu_ms:.2f} ms db {self.db_cpu_ms:.2f} ms"
            f"  load {self.load_before:4.1f}  requests {self.requests:>6}{written}"
        )


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    name: str, server: Server, paths: list[str], args: argparse.Namespace, workdir: Path
) -> Load:
    path_file = workdir / f"{name.replace(' ', '_')}.txt"
    path_file.write_text("\n".join(paths) + "\n")
    script = workdir / "cycle.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        server.url,
        "--",
        str(path_file),
        str(args.wrk_threads),
        BROWSER_AGENT,
    ]
    load_before = os.getloadavg()[0]
    workers, backends = server.workers(), database_backends()
    web_cpu, db_cpu = _cpu_seconds(workers), _cpu_seconds(backends)
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=args.duration + 60
    ).stdout
    time.sleep(1)  # requests in flight when wrk stopped finish
    # Backends opened during the run count from zero.
    web_cpu = _cpu_seconds(workers) - web_cpu
    db_cpu = _cpu_seconds(database_backends()) - db_cpu
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return Load(
        name=name,
        requests=requests,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),
        p99_ms=_ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
        web_cpu_ms=web_cpu * 1000 / max(requests, 1),
        db_cpu_ms=max(db_cpu, 0.0) * 1000 / max(requests, 1),
        load_before=load_before,
    )


def load_with_hits(
    name: str, server: Server, paths: list[str], args: argparse.Namespace, workdir: Path
) -> Load:
    before = Hit.objects.count()
    result = run_wrk(name, server, paths, args, workdir)
    return Load(**{**result.__dict__, "hits_written": Hit.objects.count() - before})


# --- checks ---


def check_rules(loads: list[Load], connections: int) -> list[str]:
    """What the rules say the database must hold after the runs; the failures."""
    failures = []
    for load in loads:
        if load.errors:
            failures.append(f"{load.name}: {load.errors} errors")
        if load.hits_written is not None and not (
            load.requests <= load.hits_written <= load.requests + connections
        ):
            failures.append(
                f"{load.name}: {load.hits_written} hits for {load.requests} answered requests"
            )
    clicks = Hit.objects.filter(kind="click")
    expected_clicked = clicks.values("queue_item", "tracking_url").distinct().count()
    clicked = CampaignLogRecord.objects.filter(action="clicked").count()
    if clicked != expected_clicked:
        failures.append(f"Clicked {clicked}, distinct (item, URL) clicked {expected_clicked}")
    opened_items = Hit.objects.filter(kind__in=["click", "open"]).values("queue_item").distinct()
    opened = CampaignLogRecord.objects.filter(action="opened").count()
    if opened != opened_items.count():
        failures.append(f"Opened {opened}, distinct items hit {opened_items.count()}")
    machines = Hit.objects.filter(is_machine=True).count()
    if machines:
        failures.append(f"{machines} browser hits classified machine")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--duration", type=int, default=30, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="bare/real pairs per endpoint")
    parser.add_argument("--skip-async", action="store_true", help="skip the async-commit run")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")

    recreate_database()
    mass_email, urls = seed(args.items)
    paths = make_paths(mass_email, urls)
    print(
        f"{args.items} queue items; {os.cpu_count()} cores; wrk -t{args.wrk_threads}"
        f" -c{args.connections} -d{args.duration}s on the same machine;"
        f" gunicorn: config/gunicorn.py"
        f" ({gunicorn_config.workers} processes x {gunicorn_config.threads} threads)"
    )
    loads: list[Load] = []
    ratios: dict[str, list[float]] = {"click": [], "pixel": [], "one insert": []}
    with tempfile.TemporaryDirectory(prefix="bench-endpoints-") as tmp:
        workdir = Path(tmp)
        server = Server()
        try:
            # Bare and real runs alternate, round after round: on a shared 2-core
            # machine one run can differ from the next by 15%, so each ratio is
            # taken against the bare run just before it, and the median reported.
            for round_number in range(1, args.rounds + 1):
                for name, bare_paths, real_paths in (
                    ("click", paths.bare_click, paths.click),
                    ("pixel", paths.bare_pixel, paths.pixel),
                ):
                    bare = run_wrk(f"bare {name} (token only)", server, bare_paths, args, workdir)
                    print(f"round {round_number}  {bare.row(None)}", flush=True)
                    if name == "click":
                        least = load_with_hits(
                            "bare click + one insert", server, paths.one_insert, args, workdir
                        )
                        loads.append(least)
                        ratios["one insert"].append(least.rps / bare.rps)
                        print(f"round {round_number}  {least.row(bare)}", flush=True)
                    real = load_with_hits(name, server, real_paths, args, workdir)
                    loads += [bare, real]
                    ratios[name].append(real.rps / bare.rps)
                    print(f"round {round_number}  {real.row(bare)}", flush=True)
        finally:
            server.stop()
        if not args.skip_async:
            server = Server({"MASSMAIL_HITS_ASYNC_COMMIT": "1"})
            try:
                bare = run_wrk("bare click (token only)", server, paths.bare_click, args, workdir)
                async_click = load_with_hits(
                    "click (async commit)", server, paths.click, args, workdir
                )
            finally:
                server.stop()
            loads += [bare, async_click]
            print(f"opt-in   {bare.row(None)}")
            print(f"opt-in   {async_click.row(bare)}")
    for name, values in ratios.items():
        goal = "the least a kept hit costs" if name == "one insert" else "goal >= 0.50"
        print(
            f"{name}: median ratio to the bare view {statistics.median(values):.2f}"
            f" over {len(values)} rounds (min {min(values):.2f}, max {max(values):.2f}); {goal}"
        )
    failures = check_rules(loads, args.connections)
    hits = Hit.objects.count()
    logs = CampaignLogRecord.objects.values_list("action").order_by()
    print(
        f"database: {hits} hits; Clicked {logs.filter(action='clicked').count()},"
        f" Opened {logs.filter(action='opened').count()}"
    )
    for failure in failures:
        print("FAIL:", failure)
    print("rules hold" if not failures else f"{len(failures)} rule(s) broken")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
