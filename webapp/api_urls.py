"""REST API routes (Django REST Framework). Each app contributes its own router entries."""

from django.urls import include, path

urlpatterns = [
    path("", include("webapp.records.api_urls")),
    path("", include("webapp.jobs.api_urls")),
]
