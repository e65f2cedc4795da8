"""The phantom page: a calibration admin uploads a phantom.json (bead list or grid plate) or
draws one from a few parameters, sees the expected projection as a PNG (stored phantoms
and the unsaved drawing), and every addition is audited; bad JSON or a refused definition
is a form error and nothing is stored; other users are refused."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from calibration.engine.phantom import phantom_from_dict

LIST = "calibration:phantom-list"
DRAW = {
    "name": "Drawn hex plate", "kind": "plate", "lattice": "hex", "pitch_mm": "3", "diameter_mm": "1.2",
    "extent_mm": "120", "marker": "hole",
}  # fmt: skip


def _upload(client, name: str, content: bytes):
    return client.post(reverse(LIST), {"name": name, "definition": ContentFile(content, name="phantom.json")})


def _png(response) -> np.ndarray:
    assert response.status_code == 200, response.content[:200]
    assert response["Content-Type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.ndim == 2 and min(image.shape) >= 256
    return image


def _created_events(name: str):
    from webapp.core.models import AuditEvent

    return AuditEvent.objects.filter(action="create", object_type="Phantom", detail__contains=name)


@pytest.mark.parametrize(
    "definition",
    [
        {"grid": {"lattice": "hex", "pitch_mm": 4.0, "marker": "bead", "diameter_mm": 1.5}},
        {"beads": [{"id": f"B{i}{j}", "xyz_mm": [10.0 * i, 10.0 * j, -8.0], "diameter_mm": 3.0 if (i, j) in {(0, 0), (1, 0), (0, 2)} else 2.0,
                    "plane": 0} for i in range(-2, 3) for j in range(-2, 3)]},
    ],
    ids=["grid plate", "bead list"],
)  # fmt: skip
def test_admin_uploads_a_valid_phantom_json(client, cal_admin, phantoms, definition):
    from webapp.calibration.models import Phantom

    client.force_login(cal_admin)
    response = _upload(client, "Uploaded", json.dumps({"name": "ignored", **definition}).encode())
    row = Phantom.objects.get(name="Uploaded")
    assert response.status_code == 302 and response["Location"] == reverse("calibration:phantom-detail", args=[row.pk])
    assert row.created_by == cal_admin and not row.builtin
    assert phantom_from_dict(row.definition).name == "Uploaded"
    assert _created_events("Uploaded").filter(user=cal_admin).count() == 1
    page = client.get(response["Location"])
    assert page.status_code == 200 and b'id="preview-image"' in page.content
    _png(client.get(reverse("calibration:phantom-preview", args=[row.pk])))
    download = client.get(reverse("calibration:phantom-json", args=[row.pk]))
    assert json.loads(download.content) == row.definition


@pytest.mark.parametrize(
    "content, words",
    [
        (b'{"name": "x", "beads": [', "not valid JSON"),
        (b"\xff\xfe not text", "not UTF-8"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b'{"name": "x", "grid": {"lattice": "tri", "pitch_mm": 3, "marker": "hole", "diameter_mm": 1}}', "grid lattice must be"),
        (b'{"name": "x", "grid": {"lattice": "square", "pitch_mm": 3, "marker": "hole"}}', "missing field &#x27;diameter_mm&#x27;"),
        (b'{"name": "x", "grid": {"lattice": "square", "pitch_mm": 3, "marker": "hole", "diameter_mm": 1, "rows": 9}}', "unknown grid field"),
        (b'{"name": "x", "beads": [{"id": "a", "xyz_mm": [0, 0, 5], "diameter_mm": 2, "plane": 0}]}', "z must be negative"),
        (json.dumps({"name": "x", "beads": [{"id": f"b{k}", "xyz_mm": [k, 0, -5], "diameter_mm": 0.5, "plane": 0}
                                            for k in range(3001)]}).encode(), "lists 3001 beads; at most 3000"),
    ],
)  # fmt: skip
def test_bad_phantom_json_is_a_form_error_and_nothing_is_stored(client, cal_admin, phantoms, content, words):
    from webapp.calibration.models import Phantom

    client.force_login(cal_admin)
    before = Phantom.objects.count()
    response = _upload(client, "Broken", content)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="upload-definition-error"' in page and words in page
    assert Phantom.objects.count() == before and not _created_events("Broken").exists()


def test_a_taken_name_is_refused_on_the_name_field(client, cal_admin, phantoms):
    from webapp.calibration.models import Phantom

    client.force_login(cal_admin)
    taken = next(iter(phantoms))
    good = json.dumps({"name": "x", "grid": {"lattice": "square", "pitch_mm": 3, "marker": "hole", "diameter_mm": 1}})
    response = _upload(client, taken, good.encode())
    assert response.status_code == 200 and b'id="upload-name-error"' in response.content
    assert b"already exists" in response.content
    assert Phantom.objects.filter(name=taken).count() == 1 and Phantom.objects.get(name=taken).builtin


def test_admin_draws_a_phantom_and_sees_its_projection(client, cal_admin, phantoms):
    from webapp.calibration.models import Phantom

    client.force_login(cal_admin)
    page = client.get(reverse(LIST))
    assert b'id="draw-form"' in page.content and b"<script>" not in page.content  # CSP: no inline scripts
    response = client.post(reverse(LIST), DRAW)
    row = Phantom.objects.get(name="Drawn hex plate")
    assert response.status_code == 302 and row.kind == "grid plate"
    assert row.definition["grid"] == {"lattice": "hex", "pitch_mm": 3.0, "marker": "hole", "diameter_mm": 1.2}
    assert row.definition["design"]["extent_mm"] == 120.0
    assert _created_events("Drawn hex plate").filter(user=cal_admin, detail__startswith="drew").count() == 1
    detail = client.get(reverse("calibration:phantom-detail", args=[row.pk]))
    assert b"Drawing parameters" in detail.content and b"extent_mm" in detail.content
    image = _png(client.get(reverse("calibration:phantom-preview", args=[row.pk])))
    assert image.min() < 100 and image.max() > 200  # bright holes in a dark plate

    two_layer = {"name": "Drawn two-layer", "kind": "two-layer", "lattice": "square", "pitch_mm": "12",
                 "diameter_mm": "2", "extent_mm": "200", "layer_gap_mm": "60", "size_ratio": "1.6"}  # fmt: skip
    assert client.post(reverse(LIST), two_layer).status_code == 302
    drawn = phantom_from_dict(Phantom.objects.get(name="Drawn two-layer").definition)
    assert drawn.has_far_layer and set(np.round(drawn.diameters[drawn.plane_mask(0)], 3)) == {2.0, 3.2}


def test_unsaved_drawing_preview_and_its_refusals(client, cal_admin, phantoms):
    from webapp.calibration.models import Phantom

    client.force_login(cal_admin)
    url = reverse("calibration:phantom-draft-preview")
    before = Phantom.objects.count()
    plate = _png(client.get(url, {k: v for k, v in DRAW.items() if k != "name"}))
    beads = _png(client.get(url, DRAW | {"marker": "bead"}))
    assert np.median(plate) < np.median(beads)  # holes in a dark plate, beads on a bright field
    refused = client.get(url, DRAW | {"pitch_mm": "1", "extent_mm": "2"})
    assert refused.status_code == 422 and b"the extent must be between" in refused.content
    not_number = client.get(url, DRAW | {"pitch_mm": "ten"})
    assert not_number.status_code == 422 and b"Pitch (mm): Enter a number" in not_number.content
    assert Phantom.objects.count() == before  # a preview stores nothing


def test_bad_drawing_is_a_form_error_and_nothing_is_stored(client, cal_admin, phantoms):
    from webapp.calibration.models import Phantom

    client.force_login(cal_admin)
    before = Phantom.objects.count()
    response = client.post(reverse(LIST), DRAW | {"diameter_mm": "2.5"})
    assert response.status_code == 200 and b'id="draw-error"' in response.content
    assert b"would touch" in response.content
    response = client.post(reverse(LIST), DRAW | {"kind": "two-layer", "layer_gap_mm": "5"})
    assert b"gap between the layers" in response.content
    assert Phantom.objects.count() == before and not _created_events("Drawn hex plate").exists()


def test_only_calibration_admins_add_phantoms_or_see_previews(client, make_user, cal_admin, phantoms):
    from webapp.calibration.models import Phantom
    from webapp.calibration.services import create_phantom

    row = create_phantom("Admin's", {"grid": {"lattice": "square", "pitch_mm": 3, "marker": "hole", "diameter_mm": 1}}, cal_admin)
    before = Phantom.objects.count()
    for role in ("Surgeon", "Reviewer", None):
        client.force_login(make_user(f"user-{role}", role))
        page = client.get(reverse(LIST))
        assert page.status_code == 200 and b"Admin&#x27;s" in page.content  # everyone sees the list
        assert b'id="draw-form"' not in page.content and b'id="upload-form"' not in page.content
        assert client.post(reverse(LIST), DRAW).status_code == 403
        assert _upload(client, "Sneaky", b'{"name": "x", "grid": {}}').status_code == 403
        for name, args in (("phantom-detail", [row.pk]), ("phantom-preview", [row.pk]), ("phantom-json", [row.pk])):
            assert client.get(reverse(f"calibration:{name}", args=args)).status_code == 403
        assert client.get(reverse("calibration:phantom-draft-preview"), DRAW).status_code == 403
    assert Phantom.objects.count() == before
    client.logout()
    anonymous = client.get(reverse("calibration:phantom-draft-preview"), DRAW)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
