from django.urls import path

from webapp.jobs import views

app_name = "jobs"
urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("status/", views.job_status_list, name="job-status-list"),
    path("diagnostic/", views.job_diagnostic, name="job-diagnostic"),
    path("<int:pk>/", views.job_detail, name="job-detail"),
    path("<int:pk>/status/", views.job_status, name="job-status"),
    path("<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
]
