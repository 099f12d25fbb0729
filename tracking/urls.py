"""Public endpoints; the link formats are made by tracking.links."""

from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("c/<str:token>/", views.click, name="click"),
    path("o/<str:token>/p.gif", views.open_pixel, name="open"),
    path("h/<str:token>/", views.trap, name="trap"),
    path(
        "unsubscribe/<str:address>/<str:signature>/",
        views.address_unsubscribe,
        name="address_unsubscribe",
    ),
]
