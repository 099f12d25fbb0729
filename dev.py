#!/usr/bin/env python3
"""Quick start: `python3 dev.py run` (the app with demo data) and `python3 dev.py test`.

Needs only Python 3.11+. Creates .venv/, installs the pinned packages from
pyproject.toml (again only when it changes), then runs. With no environment
variables everything is embedded: SQLite under var/, a filesystem Celery broker,
messages written to var/outbox/. Set DATABASE_URL, CELERY_BROKER_URL, EMAIL_* to
use PostgreSQL, Redis and SMTP instead (see README).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".massmail-installed"


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (this script may run on an older Python)
        sys.exit(f"massmail needs Python 3.11 or newer (this is {sys.version.split()[0]}).")
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("Installing packages (pinned in pyproject.toml) ...", flush=True)
        pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
        STAMP.write_text(wanted)


def manage(*args: str) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], check=True, cwd=ROOT)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run() -> None:
    setup()
    manage("migrate", "--noinput", "-v", "0")
    manage("seed_demo")
    port = os.environ.get("PORT", "8000")
    processes = {
        "web": [str(PYTHON), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "worker": [str(BIN / "celery"), "-A", "config", "worker", "-l", "info", "-c", "2"],
        "beat": [str(BIN / "celery"), "-A", "config", "beat", "-l", "info"],
    }
    running = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in processes.items()}
    # Stopped by a service manager or `timeout`: shut the three processes down too.
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"\nmassmail is running: http://127.0.0.1:{port}/admin/\n"
        "  administrator: admin / massmail-demo\n"
        "  marketer:      marketer / massmail-demo\n"
        "Web server, Celery worker and Celery beat are up; the demo mass email goes out "
        "in a few seconds and sent messages land in var/outbox/. Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in running.values()):
            time.sleep(0.5)
        failed = [name for name, p in running.items() if p.poll() is not None]
        print(f"Stopped: {', '.join(failed)} exited.", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for process in running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def test(args: list[str]) -> int:
    setup()
    return subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT).returncode


def main() -> None:
    command, *rest = sys.argv[1:] or ["help"]
    if command == "run":
        run()
    elif command == "test":
        sys.exit(test(rest))
    elif command == "setup":
        setup()
    else:
        sys.exit("usage: python3 dev.py run | test [pytest args] | setup")


if __name__ == "__main__":
    main()
