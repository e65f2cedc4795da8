"""The web server refuses to start on the development secret key when DEBUG is off.

Serving is what the secret key protects (sessions, CSRF, signed messages), so the refusal is
made where a server starts: ``manage.py runserver`` and the WSGI/ASGI applications (gunicorn,
uwsgi, daphne...). Command-line tools run with no variables set. ``check --deploy`` reports the
same problem as an error (``orthofuse.E001``).
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.checks import Error, Tags, register

MESSAGE = (
    "set DJANGO_SECRET_KEY to a long random secret (DEBUG is off; DJANGO_DEBUG=1 is for "
    "development only)"
)
SERVER_MODULES = ("webapp.wsgi", "webapp.asgi")


def insecure_secret_key() -> bool:
    """DEBUG is off and the secret key is missing or the repository's development key."""
    return not settings.DEBUG and settings.SECRET_KEY in ("", settings.DEV_SECRET_KEY)


def starting_a_server(argv: list[str] | None = None) -> bool:
    """This process is starting to serve HTTP (runserver, or a WSGI/ASGI entry point)."""
    argv = sys.argv if argv is None else argv
    if any(name in sys.modules for name in SERVER_MODULES):
        return True
    return len(argv) > 1 and argv[1] == "runserver"


def refuse_insecure_start() -> None:
    """Exit with one line on stderr (no traceback) when a server starts on the dev key."""
    if insecure_secret_key() and starting_a_server():
        raise SystemExit(f"OrthoFuse refuses to start: {MESSAGE}")


@register(Tags.security, deploy=True)
def check_secret_key(app_configs=None, **kwargs) -> list[Error]:
    if insecure_secret_key():
        return [Error(f"DJANGO_SECRET_KEY is not set: {MESSAGE}", id="orthofuse.E001")]
    return []
