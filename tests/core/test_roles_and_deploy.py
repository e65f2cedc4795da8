"""Role groups exist after migrating, and production settings pass `check --deploy`."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from webapp.core.roles import ALL_ROLES, CALIBRATION_ADMIN, SURGEON, has_role, role_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_migration_creates_role_groups():
    assert set(Group.objects.filter(name__in=ALL_ROLES).values_list("name", flat=True)) == set(
        ALL_ROLES
    )


@pytest.mark.django_db
def test_roles_follow_groups(make_user):
    surgeon = make_user("s1", SURGEON)
    admin = make_user("root", superuser=True)
    assert has_role(surgeon, SURGEON) and not has_role(surgeon, CALIBRATION_ADMIN)
    assert has_role(admin, CALIBRATION_ADMIN)
    assert role_names(surgeon) == [SURGEON]


def _check_deploy(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_production_settings_pass_check_deploy():
    result = _check_deploy(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "example.org",
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_catches_debug_settings():
    """The same check fails on development settings, so the test above can fail."""
    result = _check_deploy({"DJANGO_DEBUG": "1"})
    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout  # DEBUG=True in deployment
