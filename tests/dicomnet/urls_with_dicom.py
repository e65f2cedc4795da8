"""The project's URLs plus the DICOM pages at /dicom/ (until webapp/urls.py mounts them)."""

from django.urls import include, path

from webapp.urls import urlpatterns as project_urls

mounted = any(getattr(p, "pattern", None) and str(p.pattern) == "dicom/" for p in project_urls)
urlpatterns = list(project_urls)
if not mounted:
    urlpatterns.append(path("dicom/", include("webapp.dicomnet.urls")))
