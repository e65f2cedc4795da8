"""REST API for patients, CT studies and X-rays: scoped lists, filters, patient creation by
role, and an OpenAPI schema that renders without warnings for these endpoints."""

from __future__ import annotations

import pytest

from tests.core.factories import isolated_media, make_study, make_xray  # noqa: F401
from webapp.records.models import Patient


@pytest.mark.django_db
def test_patient_list_and_search(client, surgeon_a, patient_a, patient_b):
    client.force_login(surgeon_a)
    data = client.get("/api/patients/").json()
    assert [row["mrn"] for row in data["results"]] == ["A-0001"]
    assert client.get("/api/patients/?search=alpha").json()["count"] == 1
    assert client.get("/api/patients/?search=nomatch").json()["count"] == 0


@pytest.mark.django_db
def test_study_and_xray_fields(client, surgeon_a, patient_a):
    study = make_study(patient_a, shape=(3, 4, 5), spacing=(0.5, 0.6, 2.0))
    xray = make_xray(patient_a)
    client.force_login(surgeon_a)
    row = client.get(f"/api/studies/{study.pk}/").json()
    assert row["shape"] == [3, 4, 5] and row["spacing_mm"] == [0.5, 0.6, 2.0]
    assert len(row["affine"]) == 4 and row["patient_mrn"] == "A-0001"
    assert "volume_file" not in row  # files only through audited endpoints
    row = client.get(f"/api/xrays/{xray.pk}/").json()
    assert (row["rows"], row["cols"]) == (40, 60)
    assert row["pixel_spacing_x_mm"] == pytest.approx(0.3)
    assert row["preview_url"].endswith("/preview.png")
    assert "original_file" not in row
    assert client.get("/api/studies/?patient=abc").json()["count"] == 0


@pytest.mark.django_db
def test_surgeon_creates_patient_defaulting_to_own_teams(client, surgeon_a, team_a, team_b):
    client.force_login(surgeon_a)
    response = client.post("/api/patients/", {"mrn": "API-1"}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["care_teams"] == [team_a.pk]
    assert list(Patient.objects.get(mrn="API-1").care_teams.all()) == [team_a]

    other_team = client.post(
        "/api/patients/",
        {"mrn": "API-2", "care_teams": [team_b.pk]},
        content_type="application/json",
    )
    assert other_team.status_code == 400
    assert not Patient.objects.filter(mrn="API-2").exists()
    assert "Spine B" not in other_team.content.decode()

    duplicate = client.post("/api/patients/", {"mrn": "API-1"}, content_type="application/json")
    assert duplicate.status_code == 400 and "mrn" in duplicate.json()


@pytest.mark.django_db
def test_create_refused_for_reviewer_and_teamless_surgeon(client, make_user, team_a):
    client.force_login(make_user("rev", "Reviewer", team=team_a))
    response = client.post("/api/patients/", {"mrn": "R-1"}, content_type="application/json")
    assert response.status_code == 403
    client.force_login(make_user("lonely", "Surgeon"))
    response = client.post("/api/patients/", {"mrn": "R-2"}, content_type="application/json")
    assert response.status_code == 400 and "care_teams" in response.json()
    assert not Patient.objects.filter(mrn__startswith="R-").exists()


@pytest.mark.django_db
def test_studies_and_xrays_are_read_only(client, surgeon_a, patient_a):
    study = make_study(patient_a)
    client.force_login(surgeon_a)
    assert client.post("/api/studies/", {}, content_type="application/json").status_code == 405
    assert client.delete(f"/api/studies/{study.pk}/").status_code == 405
    assert client.delete(f"/api/patients/{patient_a.pk}/").status_code == 405


@pytest.mark.django_db
def test_openapi_schema_and_docs_render(client, surgeon_a):
    client.force_login(surgeon_a)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    for path in ("/api/patients/", "/api/patients/{id}/", "/api/studies/", "/api/xrays/{id}/"):
        assert path in schema["paths"], path
    assert client.get("/api/docs/").status_code == 200


def test_records_schema_has_no_warnings():
    """drf-spectacular reports no warnings or errors for the records endpoints."""
    from django.urls import include, path
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/", include("webapp.records.api_urls"))])
    schema = generator.get_schema(request=None, public=True)
    assert "/api/patients/" in schema["paths"]
    assert not GENERATOR_STATS._warn_cache, list(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, list(GENERATOR_STATS._error_cache)
