"""Registration pages, namespaced ``registration:``."""

from django.urls import path

from webapp.xray_registration import views

app_name = "registration"
urlpatterns = [
    path("studies/<int:pk>/prepare/", views.study_prepare, name="study-prepare"),
    path("models/<int:pk>/", views.model_detail, name="model-detail"),
    path("models/<int:pk>/curve.json", views.model_curve, name="model-curve"),
    path("models/<int:pk>/cancel/", views.model_cancel, name="model-cancel"),
    path("xrays/<int:pk>/register/", views.xray_register, name="xray-register"),
    path("<int:pk>/", views.registration_detail, name="registration-detail"),
    path("<int:pk>/<str:which>.png", views.registration_image, name="registration-image"),
]
