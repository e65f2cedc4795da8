"""CT viewer endpoints (namespaced ``records:`` through urls.py)."""

from django.urls import path

from webapp.records import viewer_views

urlpatterns = [
    path(
        "studies/<int:pk>/volume/meta.json",
        viewer_views.study_volume_meta,
        name="study-volume-meta",
    ),
    path(
        "studies/<int:pk>/volume/voxels.i16",
        viewer_views.study_volume_data,
        name="study-volume-data",
    ),
]
