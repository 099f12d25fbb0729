"""gunicorn settings for the web service: `gunicorn -c config/gunicorn.py config.wsgi`.

Threads (gthread) rather than sync workers: a tracked-link or pixel request
spends most of its time waiting on PostgreSQL, and a sync worker idles its core
through that wait. With threads, each keeps its own persistent database
connection (CONN_MAX_AGE), so the connections in use are workers x threads:
keep that below PostgreSQL's max_connections (100 by default) with room for
the Celery workers (2 cores: 3 x 16 = 48).
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# The hits of a process's concurrent requests are written together, one statement
# and one commit per batch (tracking/group_commit.py), so more threads per process
# make bigger batches. bench/bench_endpoints.py on 2 cores, 3 processes with 16
# threads against 8 (medians of 3 runs): tracked clicks +10%, open pixels +51%;
# the bare token-checking view -7%.
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 16)
# Mail clients and proxies reuse connections; keep them a little while.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Off by default: recycling a worker drops its keep-alive connections mid-traffic.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# Loading the app before forking shares its memory; connections open after the fork.
preload_app = True
# The heartbeat file on tmpfs: a container's overlay filesystem can stall it.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Access log off by default (it costs a write per hit); "-" sends it to stdout.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def pre_fork(server, worker) -> None:
    """Workers never inherit a database connection the master opened while loading."""
    from django.db import connections

    connections.close_all()
