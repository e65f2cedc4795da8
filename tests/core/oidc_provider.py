"""A local OpenID Connect provider (oidc-provider-mock) on a loopback port, for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests


@dataclass
class Provider:
    issuer: str

    def set_claims(self, sub: str, claims: dict) -> None:
        """Replace the claims the provider gives for ``sub`` (its ``PUT /users/<sub>``)."""
        response = requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        response.raise_for_status()

    def authorize(self, authorization_url: str, sub: str) -> str:
        """Submit the provider's sign-in form as ``sub``: the redirect back to our callback."""
        response = requests.post(
            authorization_url, data={"sub": sub}, allow_redirects=False, timeout=10
        )
        assert response.status_code == 302, response.text[:300]
        return response.headers["Location"]

    def deny(self, authorization_url: str) -> str:
        response = requests.post(
            authorization_url, data={"action": "deny"}, allow_redirects=False, timeout=10
        )
        assert response.status_code == 302, response.text[:300]
        return response.headers["Location"]


@contextmanager
def running_provider() -> Iterator[Provider]:
    """Start the provider in a thread, or skip the test saying why it could not start."""
    try:
        from oidc_provider_mock import run_server_in_thread

        context = run_server_in_thread(port=0)
        server = context.__enter__()
    except Exception as exc:  # noqa: BLE001 - any failure to start is a skip, with its reason
        pytest.skip(f"OIDC provider could not start: {exc}")
    try:
        yield Provider(issuer=f"http://localhost:{server.server_port}")
    finally:
        context.__exit__(None, None, None)


def callback_path(location: str) -> str:
    """The path and query of a redirect to the site (the test client takes no host)."""
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"
