"""REST API routes (Django REST Framework). Each app contributes its own ``api_urls``."""

from django.urls import include, path

urlpatterns = [
    path("", include("webapp.records.api_urls")),
    path("", include("webapp.jobs.api_urls")),
    path("", include("webapp.calibration.api_urls")),
    path("", include("webapp.xray_registration.api_urls")),
    path("", include("webapp.planning.api_urls")),
]
