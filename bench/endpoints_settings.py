"""Settings for bench/bench_endpoints.py: the project's, plus the bare baseline views."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.endpoints_urls"
