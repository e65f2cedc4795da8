"""Top-level URLs. Each app owns its own ``urls.py``; the REST API lives under /api/."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from webapp.core import api_token_views, otp_views, reauth_views
from webapp.core import views as core_views
from webapp.core.api_docs import api_docs

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("login/", core_views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", core_views.AuditedPasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"
    ),
    path("oidc/", include("webapp.core.oidc_urls")),  # single sign-on (404 when not configured)
    path("account/second-factor/", otp_views.enrol, name="otp-enrol"),
    path("account/second-factor/verify/", otp_views.verify, name="otp-verify"),
    path("account/confirm/", reauth_views.reauth, name="reauth"),
    path("account/api-tokens/", api_token_views.token_list, name="api-tokens"),
    path("account/api-tokens/new/", api_token_views.token_create, name="api-token-create"),
    path(
        "account/api-tokens/<int:pk>/revoke/", api_token_views.token_revoke, name="api-token-revoke"
    ),
    path("admin/", admin.site.urls),
    path("patients/", include("webapp.records.urls")),
    path("jobs/", include("webapp.jobs.urls")),
    path("planning/", include("webapp.planning.urls")),
    path("review/", include("webapp.review.urls")),
    path("calibration/", include("webapp.calibration.urls")),
    path("registration/", include("webapp.xray_registration.urls")),
    path("operating/", include("webapp.operating.urls")),  # intra-operative sessions
    path("api/", include("webapp.api_urls")),
    path("dicom/", include("webapp.dicomnet.urls")),  # PACS search/pull, send results
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_docs, name="api-docs"),  # signed-in, no outside CDN
]
