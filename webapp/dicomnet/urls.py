"""URLs of the DICOM network pages (mounted at /dicom/)."""

from django.urls import path

from webapp.dicomnet import views

app_name = "dicomnet"
urlpatterns = [
    path("patients/<int:pk>/pacs/", views.patient_pacs, name="patient-pacs"),
    path("patients/<int:pk>/pacs/pull/", views.pull, name="pacs-pull"),
    path("registrations/<int:pk>/send/", views.send_registration, name="send-registration"),
    path("plan-versions/<int:pk>/send/", views.send_plan_version, name="send-plan-version"),
]
