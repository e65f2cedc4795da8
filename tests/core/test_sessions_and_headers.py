"""Sessions end at browser close and after the idle time; pages for signed-in users are never
cached; every response carries the CSP and Permissions-Policy; no template has an inline
script; the API reference is behind sign-in and loads nothing from elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.urls import reverse

from tests.core.factories import make_xray
from webapp.core.idle_timeout import BACKGROUND_HEADER, LAST_ACTIVITY_KEY

ROOT = Path(__file__).resolve().parents[2]
PATIENTS = "records:patient-list"


def _set_last_activity(client, seconds_ago: float) -> None:
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - seconds_ago
    session.save()


@pytest.mark.django_db
def test_session_cookie_ends_with_the_browser(client, surgeon_a):
    response = client.post(
        reverse("login"), {"username": "surgeon_a", "password": "pw-surgeon_a-123"}
    )
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["max-age"] == "" and cookie["expires"] == ""


@pytest.mark.django_db
def test_idle_session_is_signed_out(client, surgeon_a, settings):
    settings.ORTHOFUSE_SESSION_IDLE_MINUTES = 20
    client.force_login(surgeon_a)
    assert client.get(reverse(PATIENTS)).status_code == 200
    _set_last_activity(client, 19 * 60)
    assert client.get(reverse(PATIENTS)).status_code == 200  # still active, and refreshed
    assert time.time() - client.session[LAST_ACTIVITY_KEY] < 60
    _set_last_activity(client, 21 * 60)
    response = client.get(reverse(PATIENTS))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.get("/api/patients/").status_code == 403  # signed out for the API too
    page = client.get(response["Location"])
    assert "signed out after 20 minutes without activity" in page.content.decode()


@pytest.mark.django_db
def test_background_polls_do_not_keep_the_session_alive(client, surgeon_a, settings):
    settings.ORTHOFUSE_SESSION_IDLE_MINUTES = 20
    client.force_login(surgeon_a)
    client.get(reverse(PATIENTS))
    _set_last_activity(client, 19 * 60)
    before = client.session[LAST_ACTIVITY_KEY]
    poll = client.get("/api/patients/", headers={BACKGROUND_HEADER: "1"})
    assert poll.status_code == 200
    assert client.session[LAST_ACTIVITY_KEY] == before
    _set_last_activity(client, 21 * 60)
    assert client.get("/api/patients/", headers={BACKGROUND_HEADER: "1"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["page", "download", "api"])
def test_responses_for_signed_in_users_are_not_stored(client, surgeon_a, patient_a, kind):
    client.force_login(surgeon_a)
    url = {
        "page": reverse("records:patient-detail", kwargs={"pk": patient_a.pk}),
        "download": reverse("records:xray-download", kwargs={"pk": make_xray(patient_a).pk}),
        "api": f"/api/patients/{patient_a.pk}/",
    }[kind]
    response = client.get(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


@pytest.mark.django_db
def test_every_response_has_csp_and_permissions_policy(client):
    response = client.get(reverse("login"))
    csp = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1).split()
    assert "'self'" in script_src
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "https:"} & set(script_src)
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "camera=()" in response["Permissions-Policy"]


def test_templates_have_no_inline_scripts():
    """script-src 'self' blocks inline scripts; JSON data blocks (json_script) are not run."""
    offenders = []
    for path in sorted(ROOT.glob("**/templates/**/*.html")):
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and "application/json" not in tag:
                offenders.append(f"{path.relative_to(ROOT)}: {tag}")
        if re.search(r"\son[a-z]+\s*=\s*[\"']", text):
            offenders.append(f"{path.relative_to(ROOT)}: inline event handler")
    assert offenders == []


@pytest.mark.django_db
def test_api_reference_is_behind_sign_in_and_self_hosted(client, surgeon_a):
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith(reverse("login"))
    assert client.get("/api/schema/").status_code == 403
    client.force_login(surgeon_a)
    page = client.get("/api/docs/").content.decode()
    assert "/api/patients/{id}/" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from elsewhere
    assert client.get("/api/schema/").status_code == 200


def test_idle_minutes_come_from_the_environment():
    code = "from django.conf import settings; print('IDLE', settings.ORTHOFUSE_SESSION_IDLE_MINUTES)"
    env = {**os.environ, "DJANGO_DEBUG": "1", "ORTHOFUSE_SESSION_IDLE_MINUTES": "7"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "IDLE 7" in result.stdout
