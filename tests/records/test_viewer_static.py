"""The viewer bundle, its decode worker and WASM codecs are served with working MIME types."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client, override_settings

DIST = Path(__file__).resolve().parents[2] / "static" / "dist"

EXPECTED = {
    "dist/ct_viewer.js": "text/javascript",
    "dist/decodeImageFrameWorker.js": "text/javascript",
    "dist/ct_viewer.css": "text/css",
    "dist/pico.min.css": "text/css",
    "dist/plotly.min.js": "text/javascript",
    "dist/codecs/openjpegwasm_decode.wasm": "application/wasm",
    "dist/codecs/charlswasm_decode.wasm": "application/wasm",
    "dist/codecs/libjpegturbowasm_decode.wasm": "application/wasm",
    "dist/codecs/openjphjs.wasm": "application/wasm",
    "dist/codecs/jpegxlwasm_decode.wasm": "application/wasm",
}


@pytest.fixture
def built():
    if not (DIST / "ct_viewer.js").exists():
        pytest.skip("front-end bundle not built: run `npm ci && npm run build`")


def test_build_output_is_complete(built):
    for relative in EXPECTED:
        path = DIST.parent / relative
        assert path.is_file() and path.stat().st_size > 0, relative
    for wasm in DIST.glob("codecs/*.wasm"):
        assert wasm.read_bytes()[:4] == b"\0asm", wasm.name
    bundle = (DIST / "ct_viewer.js").read_text(encoding="utf-8")
    # The DICOM loader finds its worker next to the bundle.
    assert 'new URL("./decodeImageFrameWorker.js",import.meta.url)' in bundle


@pytest.mark.django_db
@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True)
def test_whitenoise_serves_correct_mime_types(built):
    client = Client()
    for relative, mime in EXPECTED.items():
        response = client.get(f"/static/{relative}")
        assert response.status_code == 200, relative
        assert response["Content-Type"].split(";")[0].strip() == mime, relative
        # WhiteNoise itself answered (it adds these headers), not a Django fallback.
        assert "Access-Control-Allow-Origin" in response or "Cache-Control" in response


@pytest.mark.django_db
def test_live_server_static_handler_serves_correct_mime_types(built, live_server):
    import urllib.request

    for relative, mime in EXPECTED.items():
        with urllib.request.urlopen(f"{live_server.url}/static/{relative}") as response:
            assert response.status == 200, relative
            assert response.headers["Content-Type"].split(";")[0].strip() == mime, relative
