"""The project's URLs plus the baselines bench/bench_endpoints.py compares against.

The bare views do what a tracked link and the pixel cannot avoid (check the
signed token, answer with the same redirect or the same GIF) and nothing else:
no database, no hit.

The one-insert view is the least any design that keeps every answered hit must
do: it also writes one row, in one prepared statement on the thread's
persistent connection, before answering (no log entry, no classification, no
join but the queue item's). Its rows have kind "bench", which no rule counts.
"""

import psycopg
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns
from massmail.models import QueueItem
from tracking import links
from tracking.models import Hit
from tracking.views import PIXEL, no_cache

ONE_INSERT = (
    f"INSERT INTO {Hit._meta.db_table} (queue_item_id, kind, tracking_url_id, at, method,"
    " user_agent, ip, is_machine, machine_reason)"
    " SELECT q.id, 'bench', %s, now(), 'GET', '', NULL, false, ''"
    f" FROM {QueueItem._meta.db_table} q WHERE q.uid = %s"
)

BARE_DESTINATION = "https://example.org/offer"


def bare_click(request: HttpRequest, token: str) -> HttpResponse:
    if links.read_click_token(token) is None:
        raise Http404
    return no_cache(HttpResponseRedirect(BARE_DESTINATION))


def bare_click_one_insert(request: HttpRequest, token: str) -> HttpResponse:
    found = links.read_click_token(token)
    if found is None:
        raise Http404
    uid, tracking_url_id = found
    connection.ensure_connection()
    raw = connection.connection
    raw.prepare_threshold = (
        2**31 - 1
    )  # prepare only what asks for it, as tracking.hit_statement does
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(ONE_INSERT, [tracking_url_id, uid], prepare=True)
        if cursor.rowcount != 1:
            raise Http404
    return no_cache(HttpResponseRedirect(BARE_DESTINATION))


def bare_pixel(request: HttpRequest, token: str) -> HttpResponse:
    if links.read_open_token(token) is None:
        raise Http404
    return no_cache(HttpResponse(PIXEL, content_type="image/gif"))


urlpatterns = [
    path("bare/c/<str:token>/", bare_click),
    path("bare/w/<str:token>/", bare_click_one_insert),
    path("bare/o/<str:token>/p.gif", bare_pixel),
    path("", include(project_urlpatterns)),
]
