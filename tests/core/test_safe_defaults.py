"""Safe defaults: DEBUG is off unless asked for, a web server never starts on the dev secret key
with DEBUG off (command-line tools still run with no variables), load_demo refuses a
production site, and the Makefile's dev targets set their own variables."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-only-insecure-secret-key-change-me-in-production-0123456789"
SHOW_DEBUG = "from django.conf import settings; print('DEBUG', settings.DEBUG)"


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


SERVERS = {
    "runserver": ["manage.py", "runserver", "--noreload", "127.0.0.1:0"],
    "wsgi": ["-c", "import webapp.wsgi"],
    "asgi": ["-c", "import webapp.asgi"],
}


def _python(args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize(
    "env",
    [{}, {"DJANGO_DEBUG": "0"}, {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": DEV_SECRET}],
    ids=["nothing-set", "debug-off", "debug-off-dev-key"],
)
def test_server_refuses_to_start_on_the_dev_key_in_one_line(server, env):
    result = _python(SERVERS[server], **env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "DJANGO_SECRET_KEY" in lines[0]
    assert "Traceback" not in result.stderr


def test_wsgi_starts_with_a_secret_key():
    result = _python(["-c", "import webapp.wsgi; print('served')"], DJANGO_SECRET_KEY="k" * 60)
    assert result.returncode == 0, result.stderr
    assert "served" in result.stdout


def test_command_line_tools_run_with_no_variables():
    """The manage.py contract (docs/CONVENTIONS.md) needs no variables; DEBUG stays off."""
    result = _manage("shell", "-c", SHOW_DEBUG)
    assert result.returncode == 0, result.stderr
    assert "DEBUG False" in result.stdout and result.stderr.strip() == ""


def test_check_deploy_names_the_missing_secret_key():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "orthofuse.E001" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr


def test_debug_is_off_unless_set():
    production = _manage("shell", "-c", SHOW_DEBUG, DJANGO_SECRET_KEY="x" * 60)
    assert production.returncode == 0, production.stderr
    assert "DEBUG False" in production.stdout
    development = _manage("shell", "-c", SHOW_DEBUG, DJANGO_DEBUG="1")
    assert development.returncode == 0, development.stderr
    assert "DEBUG True" in development.stdout


def test_check_deploy_clean_with_production_variables_and_no_debug_variable():
    """Production sets the secret and the hosts; DEBUG needs no variable at all."""
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_ALLOWED_HOSTS="orthofuse.example.org",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_load_demo_refuses_when_debug_is_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        call_command("load_demo")
    assert not User.objects.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["run", "serve", "demo", "migrate", "test"])
def test_makefile_dev_targets_set_django_debug(target):
    """A probe prerequisite prints the variable the target's recipes see, then stops make
    (the targets' other, heavy prerequisites are marked up to date with -o)."""
    others = [f"-o{name}" for name in ("deps", "frontend", "setup", "migrate", "demo", "serve")
              if name != target]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_DEBUG"}
    result = subprocess.run(
        ["make", "-s", *others, "--eval", f"{target}: probe",
         "--eval", 'probe: ; @echo "probe=$$DJANGO_DEBUG"; exit 3', target],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "probe=1" in result.stdout, result.stdout + result.stderr
