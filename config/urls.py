from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "massmail"
admin.site.site_title = "massmail"
admin.site.index_title = "Email marketing"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # Public endpoints: unsubscribe page and one-click, tracked links, open pixel.
    path("", include("tracking.urls")),
    # ESP tracking webhooks (bounces, complaints): bounces.webhooks receives the events.
    path("webhooks/anymail/", include("anymail.urls")),
    # The REST API, its OpenAPI schema (/api/schema/) and docs (/api/docs/).
    path("api/", include("api.urls")),
]
