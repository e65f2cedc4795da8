"""Per-user API tokens with expiry for machines, and the DRF authentication class for them.

A machine sends ``Authorization: Bearer <token>``. Tokens are 256-bit random strings shown
once; the database keeps their SHA-256 only. An expired, revoked or unknown token, or one of
an inactive user, is refused with one line (not audited per request: a flood of bad tokens
must not flood the audit trail; guessing a 256-bit token is not a practical attack).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from webapp.core.models import ApiToken

TOKEN_PREFIX = "ofk_"
LAST_USED_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def max_days() -> int:
    return int(getattr(settings, "ORTHOFUSE_API_TOKEN_MAX_DAYS", 365))


def create_token(user, name: str, days: int) -> tuple[ApiToken, str]:
    """A new token valid for ``days`` (1 to the maximum): the row and the token, once."""
    if not 1 <= days <= max_days():
        raise ValueError(f"a token lasts 1 to {max_days()} days")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100],
        key_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        expires_at=timezone.now() + timedelta(days=days),
    )
    return row, token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication by ``Authorization: Bearer ofk_...``."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2 or not header[1].startswith(TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed("Malformed API token header.")
        row = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=hash_token(header[1]))
            .first()
        )
        if row is None or not row.is_active or not row.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        return row.user, row

    def authenticate_header(self, request) -> str:
        return self.keyword  # 401 with WWW-Authenticate: Bearer


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Names the scheme in the OpenAPI schema (``bearer``), for the API docs."""

    target_class = "webapp.core.api_tokens.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "Per-user API token (ofk_...)"}
