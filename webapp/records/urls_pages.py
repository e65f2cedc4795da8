"""Record pages (patients, studies, X-rays, C-arms); namespaced ``records:`` via urls.py."""

from django.urls import path

from webapp.records import carm_views, imaging_views, views

urlpatterns = [
    path("", views.patient_list, name="patient-list"),
    path("new/", views.patient_create, name="patient-create"),
    path("<int:pk>/", views.patient_detail, name="patient-detail"),
    path("<int:pk>/upload-ct/", views.ct_upload, name="ct-upload"),
    path("<int:pk>/upload-ct/<str:token>/", views.ct_choose_series, name="ct-choose-series"),
    path("<int:pk>/upload-xray/", views.xray_upload, name="xray-upload"),
    path("studies/<int:pk>/", imaging_views.study_detail, name="study-detail"),
    path("studies/<int:pk>/volume.npy", imaging_views.study_download, name="study-download"),
    path("xrays/<int:pk>/", imaging_views.xray_detail, name="xray-detail"),
    path("xrays/<int:pk>/preview.png", imaging_views.xray_preview, name="xray-preview"),
    path("xrays/<int:pk>/file", imaging_views.xray_download, name="xray-download"),
    path("c-arms/", carm_views.carm_list, name="carm-list"),
    path("c-arms/new/", carm_views.carm_edit, name="carm-create"),
    path("c-arms/<int:pk>/", carm_views.carm_detail, name="carm-detail"),
    path("c-arms/<int:pk>/edit/", carm_views.carm_edit, name="carm-edit"),
]
