from django.urls import path

from webapp.calibration import phantom_views, views

app_name = "calibration"
urlpatterns = [
    path("", views.profile_list, name="profile-list"),
    path("new/", views.profile_new, name="profile-new"),
    path("profiles/<int:pk>/", views.profile_detail, name="profile-detail"),
    path("profiles/<int:pk>/status.json", views.profile_status, name="profile-status"),
    path("profiles/<int:pk>/image.png", views.profile_image, name="profile-image"),
    path("profiles/<int:pk>/profile.json", views.profile_json, name="profile-json"),
    path("profiles/<int:pk>/review/", views.profile_review, name="profile-review"),
    path("profiles/<int:pk>/attempt.png", views.profile_attempt_image, name="profile-attempt-image"),
    path("phantoms/", phantom_views.phantom_list, name="phantom-list"),
    path("phantoms/preview.png", phantom_views.phantom_draft_preview, name="phantom-draft-preview"),
    path("phantoms/<int:pk>/", phantom_views.phantom_detail, name="phantom-detail"),
    path("phantoms/<int:pk>/preview.png", phantom_views.phantom_preview, name="phantom-preview"),
    path("phantoms/<int:pk>/phantom.json", phantom_views.phantom_json, name="phantom-json"),
    path("xrays/<int:pk>/dewarp/", views.xray_dewarp, name="xray-dewarp"),
]
