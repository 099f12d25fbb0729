"""A stalled pipeline shows: real worker processes on the filesystem broker run the send
tick, are killed with SIGKILL, the ticks pile up, and the pages warn that the send tick is
overdue; a replacement worker (no lock left behind) runs the backlog and the warning goes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from massmail.jobs import SEND_TICK
from massmail.models import JobRun
from massmail.schedule import TASK
from tests.factories import make_mass_email
from tests.fixtures.sending import set_send_tick_every
from tests.services import require_postgres

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
OVERDUE = 'class="warning job-overdue" data-job="massmail.tasks.send_mass_emails"'


def worker_env(var_dir: Path) -> dict[str, str]:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        MASSMAIL_VAR_DIR=str(var_dir),  # the filesystem broker's folders live here
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    )
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-c", "2", "-l", "info"]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )


def send_tick(env: dict[str, str]) -> None:
    """What beat does: put the task on the broker."""
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "call", TASK],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def wait_until(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.2)


def tick_run() -> JobRun | None:
    return JobRun.objects.filter(task=SEND_TICK).first()


def test_killed_workers_show_an_overdue_send_tick_and_a_new_worker_catches_up(
    admin_client, tmp_path
):
    require_postgres()
    set_send_tick_every(1)
    mass_email = make_mass_email()
    page_url = reverse("admin:massmail_massemail_change", args=[mass_email.pk])
    env, log = worker_env(tmp_path), tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        send_tick(env)
        wait_until(lambda: tick_run() is not None and tick_run().finished_at, "first tick")
        first = tick_run().started_at
        assert OVERDUE not in admin_client.get(page_url).content.decode()

        # The report: the pool processes were SIGKILLed and their replacements hung on
        # the pool's semaphore (prefork without an event loop). With the filesystem
        # broker's pool no process holds a lock another one needs.
        for child in children_of(worker.pid):
            os.kill(child, signal.SIGKILL)
        send_tick(env)
        wait_until(lambda: tick_run().started_at > first, "a tick after the children died")
        first = tick_run().started_at

        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        for _ in range(3):
            send_tick(env)
        queued = list((tmp_path / "celery" / "queue").glob("*.msg"))
        assert len(queued) == 3, "the ticks pile up while no worker runs"
        with time_machine.travel(first + timedelta(minutes=3)):
            for url in [page_url, reverse("admin:index")]:
                assert OVERDUE in admin_client.get(url).content.decode(), url

        worker = start_worker(env, log)
        wait_until(lambda: tick_run().started_at > first, "a tick on the new worker")
        wait_until(lambda: not list((tmp_path / "celery" / "queue").glob("*.msg")), "backlog")
        assert OVERDUE not in admin_client.get(page_url).content.decode()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
