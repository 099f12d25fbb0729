from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from bounces.webhooks import webhook_urls

admin.site.site_header = "massmail"
admin.site.site_title = "massmail"
admin.site.index_title = "Email marketing"
# The start page (massmail.start) above the app list.
admin.site.index_template = "admin/massmail/start_index.html"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # Public endpoints: unsubscribe page and one-click, tracked links, open pixel.
    path("", include("tracking.urls")),
    # Subscription forms (also embedded on other sites) and their confirmation links.
    path("", include("subscriptions.urls")),
    # ESP tracking webhooks (bounces, complaints): bounces.webhooks receives the events;
    # a malformed body answers 400.
    path("webhooks/anymail/", include((webhook_urls(), "anymail"))),
    # The REST API, its OpenAPI schema (/api/schema/) and docs (/api/docs/).
    path("api/", include("api.urls")),
]
