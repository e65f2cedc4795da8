"""Single sign-on settings (OpenID Connect): read at use, so tests can override them.

Enabled when a client id and either ``ORTHOFUSE_OIDC_ISSUER`` (endpoints found through the
issuer's ``/.well-known/openid-configuration``) or all explicit endpoints are set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DISCOVERY_TIMEOUT_S = 10
_discovered: dict[str, dict] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    userinfo: str
    jwks: str


def oidc_enabled() -> bool:
    """True when single sign-on is configured (client id plus an issuer or the endpoints)."""
    if not getattr(settings, "OIDC_RP_CLIENT_ID", ""):
        return False
    explicit = all(
        getattr(settings, name, "")
        for name in ("OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT",
                     "OIDC_OP_USER_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT")
    )
    return explicit or bool(getattr(settings, "ORTHOFUSE_OIDC_ISSUER", ""))


def provider_name() -> str:
    return getattr(settings, "ORTHOFUSE_OIDC_PROVIDER_NAME", "") or "single sign-on"


def issuer() -> str:
    return (getattr(settings, "ORTHOFUSE_OIDC_ISSUER", "") or "").rstrip("/")


def _discover(issuer_url: str) -> dict:
    """The issuer's discovery document, fetched once per process."""
    with _lock:
        if issuer_url not in _discovered:
            url = f"{issuer_url}/.well-known/openid-configuration"
            try:
                response = requests.get(url, timeout=DISCOVERY_TIMEOUT_S)
                response.raise_for_status()
                document = response.json()
            except (requests.RequestException, ValueError) as exc:
                raise ImproperlyConfigured(f"OIDC discovery failed at {url}: {exc}") from exc
            if str(document.get("issuer", "")).rstrip("/") != issuer_url:
                raise ImproperlyConfigured(
                    f"OIDC discovery at {url} names issuer {document.get('issuer')!r}, "
                    f"not {issuer_url!r}"
                )
            _discovered[issuer_url] = document
        return _discovered[issuer_url]


def endpoints() -> Endpoints:
    """Explicit ``OIDC_OP_*`` settings win; the rest come from the issuer's discovery."""
    explicit = {
        "authorization": getattr(settings, "OIDC_OP_AUTHORIZATION_ENDPOINT", ""),
        "token": getattr(settings, "OIDC_OP_TOKEN_ENDPOINT", ""),
        "userinfo": getattr(settings, "OIDC_OP_USER_ENDPOINT", ""),
        "jwks": getattr(settings, "OIDC_OP_JWKS_ENDPOINT", ""),
    }
    if all(explicit.values()) or not issuer():
        return Endpoints(**explicit)
    document = _discover(issuer())
    keys = {"authorization": "authorization_endpoint", "token": "token_endpoint",
            "userinfo": "userinfo_endpoint", "jwks": "jwks_uri"}
    return Endpoints(**{name: explicit[name] or str(document.get(key, "")) for name, key in keys.items()})


def forget_discovery() -> None:
    """Drop cached discovery documents (tests start providers on new ports)."""
    with _lock:
        _discovered.clear()
