"""Shared test set-up: which real services are here, and the fixture modules.

Tests that need PostgreSQL, Redis, Dovecot, Postfix or Chromium skip with a
visible reason on a bare machine; with MASSMAIL_REQUIRE_SERVICES=1 (as .ci/run
sets it) a missing service fails the test instead, so CI never skips silently.
Fixture modules live in tests/fixtures/ and are loaded here as plugins.
"""

from pathlib import Path

from tests.services import require_postgres

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if not path.name.startswith("_")
)


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("postgres"):
        require_postgres()
