from django.urls import path

from webapp.planning import views

app_name = "planning"
urlpatterns = [
    path("", views.plan_index, name="index"),
    path("outcomes/", views.outcomes_page, name="outcomes"),
    path("patient/<int:patient_id>/", views.patient_plans, name="patient-plans"),
    path("<int:pk>/", views.plan_page, name="plan"),
    path("<int:pk>/view<int:index>.png", views.view_image, name="view-image"),
    path("<int:pk>/xray/<int:xray_id>.png", views.xray_image, name="xray-image"),
    path("<int:pk>/export.json", views.export_json, name="export-json"),
    path("<int:pk>/report.png", views.report_file, {"fmt": "png"}, name="report-png"),
    path("<int:pk>/report.pdf", views.report_file, {"fmt": "pdf"}, name="report-pdf"),
    path("<int:pk>/scene.json", views.scene_json, name="scene"),
    path("<int:pk>/postop/", views.postop_page, name="postop"),
]
