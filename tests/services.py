"""Finding the real services tests use, and skipping (or failing in CI) without them."""

from __future__ import annotations

import os
import shutil
import socket

import pytest
from django.db import connection

REQUIRE_SERVICES = os.environ.get("MASSMAIL_REQUIRE_SERVICES", "") in {"1", "true", "yes"}
REDIS_URL = os.environ.get("MASSMAIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def unavailable(reason: str) -> None:
    """Skip, or fail when the run requires every service (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://... (running on SQLite)")


def require_redis() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        unavailable(f"needs Redis at {REDIS_URL}: {error}")
    return REDIS_URL


def require_program(name: str, *, hint: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if not path:
        unavailable(f"needs {name} ({hint})")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
