"""Public pages of subscription forms; the links are made by subscriptions.signup."""

from django.urls import path

from subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("subscribe/confirm/<str:token>/", views.confirm, name="confirm"),
    path("subscribe/<str:key>/", views.subscribe, name="form"),
    path("subscribe/<str:key>/token/", views.form_token, name="token"),
    path("subscribe/<str:key>/thanks/", views.thanks, name="thanks"),
    path("subscribe/<str:key>/confirmed/", views.confirmed, name="confirmed"),
]
