from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from api import views

router = DefaultRouter()
router.register("target-lists", views.TargetListViewSet)
router.register("contacts", views.ContactViewSet)
router.register("leads", views.LeadViewSet)
router.register("templates", views.EmailTemplateViewSet)
router.register("campaigns", views.CampaignViewSet)
router.register("mass-emails", views.MassEmailViewSet)
router.register("split-tests", views.SplitTestViewSet)

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
