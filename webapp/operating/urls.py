"""Intra-operative session pages, namespaced ``operating:``."""

from django.urls import path

from webapp.operating import views

app_name = "operating"
urlpatterns = [
    path("", views.session_list, name="list"),
    path("open/", views.session_open, name="open"),
    path("<int:pk>/", views.session_page, name="session"),
    path("<int:pk>/shots.json", views.session_json, name="session-json"),
    path("<int:pk>/close/", views.session_close, name="close"),
    path("<int:pk>/pin/", views.session_pin, name="pin"),
]
