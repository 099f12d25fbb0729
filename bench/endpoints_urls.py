"""The project's URLs plus the baselines bench/bench_endpoints.py compares against.

The bare views do what a tracked link and the pixel cannot avoid (check the
signed token, answer with the same redirect or the same GIF) and nothing else:
no database, no hit.
"""

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns
from tracking import links
from tracking.views import PIXEL, no_cache

BARE_DESTINATION = "https://example.org/offer"


def bare_click(request: HttpRequest, token: str) -> HttpResponse:
    if links.read_click_token(token) is None:
        raise Http404
    return no_cache(HttpResponseRedirect(BARE_DESTINATION))


def bare_pixel(request: HttpRequest, token: str) -> HttpResponse:
    if links.read_open_token(token) is None:
        raise Http404
    return no_cache(HttpResponse(PIXEL, content_type="image/gif"))


urlpatterns = [
    path("bare/c/<str:token>/", bare_click),
    path("bare/o/<str:token>/p.gif", bare_pixel),
    path("", include(project_urlpatterns)),
]
