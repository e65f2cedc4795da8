"""Single sign-on with OpenID Connect (mozilla-django-oidc), off unless configured.

The backend matches users by the provider's issuer and subject (``ExternalIdentity``), makes
new users with an unusable password, and sets their roles and care teams from the claims
(``webapp.core.oidc_claims``). Endpoints are resolved at use (``webapp.core.oidc_config``), so
a password sign-in never touches the provider and nothing is fetched at start-up.
"""

from __future__ import annotations

import hashlib
import logging

import jwt
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from webapp.core.models import ExternalIdentity
from webapp.core.oidc_claims import sync_roles, sync_teams
from webapp.core.oidc_config import endpoints, issuer, oidc_enabled

BACKEND_PATH = "webapp.core.oidc.OIDCBackend"
logger = logging.getLogger(__name__)
# the provider unreachable, misconfigured, or its answer refused: the sign-in page says so
PROVIDER_ERRORS = (SuspiciousOperation, ImproperlyConfigured, requests.RequestException)


def _identity_issuer() -> str:
    """The issuer users are recorded under (the token endpoint when no issuer is set)."""
    return issuer() or endpoints().token


class OIDCBackend(OIDCAuthenticationBackend):
    """Signs in the user the provider names; answers only the OIDC callback."""

    def __init__(self, *args, **kwargs) -> None:  # endpoints are read at use, not here
        self.UserModel = get_user_model()

    def _load_settings(self) -> None:
        ep = endpoints()
        self.OIDC_OP_TOKEN_ENDPOINT = ep.token
        self.OIDC_OP_USER_ENDPOINT = ep.userinfo
        self.OIDC_OP_JWKS_ENDPOINT = ep.jwks
        self.OIDC_RP_CLIENT_ID = self.get_settings("OIDC_RP_CLIENT_ID")
        self.OIDC_RP_CLIENT_SECRET = self.get_settings("OIDC_RP_CLIENT_SECRET")
        self.OIDC_RP_SIGN_ALGO = self.get_settings("OIDC_RP_SIGN_ALGO", "RS256")
        self.OIDC_RP_IDP_SIGN_KEY = self.get_settings("OIDC_RP_IDP_SIGN_KEY", None)

    def authenticate(self, request, **kwargs):
        if request is None or not oidc_enabled():
            return None
        if request.path != reverse("oidc_authentication_callback") or "username" in kwargs:
            return None  # a password sign-in: not ours
        self._load_settings()
        return super().authenticate(request, **kwargs)

    def retrieve_matching_jwk(self, token):
        """The provider's signing key: the one named by the token's ``kid``, or the only key
        of its set when the token names none (the library would fail on a missing ``kid``)."""
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=self.get_settings("OIDC_TIMEOUT", 10))
        response.raise_for_status()
        keys = [key for key in response.json().get("keys", []) if isinstance(key, dict)]
        header = jwt.get_unverified_header(token)
        kid, alg = header.get("kid"), header.get("alg")
        candidates = [
            key for key in keys
            if (kid is None or key.get("kid") == kid) and key.get("alg", alg) == alg
        ]
        if len(candidates) != 1:
            raise SuspiciousOperation("no single signing key of the provider matches the ID token")
        return jwt.PyJWK(candidates[0])

    def verify_token(self, token, **kwargs):
        """The library checks the signature and nonce; this adds issuer and audience."""
        payload = super().verify_token(token, **kwargs)
        expected_issuer = issuer()
        if expected_issuer and str(payload.get("iss", "")).rstrip("/") != expected_issuer:
            raise SuspiciousOperation("ID token from another issuer")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("ID token for another client")
        return payload

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims):
        ids = ExternalIdentity.objects.filter(
            issuer=_identity_issuer(), subject=str(claims["sub"])
        ).values("user_id")
        return self.UserModel.objects.filter(pk__in=ids)

    def _free_username(self, claims) -> str:
        base = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])[:100]
        if not self.UserModel.objects.filter(username=base).exists():
            return base
        digest = hashlib.sha256(f"{_identity_issuer()} {claims['sub']}".encode()).hexdigest()[:10]
        return f"{base}.sso-{digest}"  # never takes over a local account of the same name

    @transaction.atomic
    def create_user(self, claims):
        user = self.UserModel(username=self._free_username(claims))
        user.set_unusable_password()  # signs in only through the provider
        user.save()
        ExternalIdentity.objects.create(user=user, issuer=_identity_issuer(), subject=str(claims["sub"]))
        return self.update_user(user, claims)

    @transaction.atomic
    def update_user(self, user, claims):
        user.email = str(claims.get("email") or "")[:254]
        user.first_name = str(claims.get("given_name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.save(update_fields=["email", "first_name", "last_name"])
        sync_roles(user, claims)
        sync_teams(user, claims)
        return user

    def get_user(self, user_id):
        """Like Django's: an inactive user's session ends (the library's would keep it)."""
        return ModelBackend.get_user(self, user_id)


class OIDCRequestView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider; 404 when single sign-on is off."""

    def __init__(self, *args, **kwargs) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("single sign-on is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = endpoints().authorization
        except ImproperlyConfigured as exc:
            logger.warning("single sign-on unavailable: %s", exc)
            return HttpResponseRedirect(self.get_settings("LOGIN_REDIRECT_URL_FAILURE"))
        self.OIDC_RP_CLIENT_ID = self.get_settings("OIDC_RP_CLIENT_ID")
        return super().get(request)


class OIDCCallbackView(OIDCAuthenticationCallbackView):
    """The provider's answer; 404 when single sign-on is off, the sign-in page on failure."""

    def login_success(self) -> HttpResponse:
        from webapp.core.reauth import mark_authenticated

        response = super().login_success()
        mark_authenticated(self.request)  # also when the same user came back to re-authenticate
        return response

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("single sign-on is not configured")
        try:
            return super().get(request)
        except PROVIDER_ERRORS as exc:
            logger.warning("single sign-on refused: %s", exc)
            return self.login_failure()  # one line on the sign-in page, never a 500
