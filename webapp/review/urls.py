"""Review pages, namespaced ``review:``."""

from django.urls import path

from webapp.review import views

app_name = "review"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("data.json", views.dashboard_data, name="dashboard-data"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("patients/<int:pk>/", views.patient_registrations, name="patient"),
    path("registrations/<int:pk>/", views.registration_review, name="registration"),
    path("registrations/<int:pk>/decide/", views.decide, name="decide"),
    path("registrations/<int:pk>/landmarks/", views.landmark_add, name="landmark-add"),
    path(
        "registrations/<int:pk>/landmarks/<int:landmark_pk>/delete/",
        views.landmark_delete,
        name="landmark-delete",
    ),
]
