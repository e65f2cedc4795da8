"""Single sign-on URLs (names as mozilla-django-oidc expects them)."""

from django.urls import path

from webapp.core.oidc import OIDCCallbackView, OIDCRequestView

urlpatterns = [
    path("callback/", OIDCCallbackView.as_view(), name="oidc_authentication_callback"),
    path("authenticate/", OIDCRequestView.as_view(), name="oidc_authentication_init"),
]
