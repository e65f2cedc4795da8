"""The bundled DICOM image loader decodes compressed DICOM in the browser: its module
worker and WASM codecs load from static/dist with the right paths and MIME types."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.volumes import affine_for, phantom_hu, save_study
from tests.conftest import shared_path

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SYNTAXES = {
    "jpeg2000-lossless": "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm",
    "jpeg-ls-lossless": "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm",
    "jpeg-lossless-sv1": "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm",
    "rle": "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
    "explicit-le": "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm",
}


def reference_stats(path) -> dict:
    """Independent reading with pydicom (+pylibjpeg), modality LUT applied."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    dataset = pydicom.dcmread(path)
    stored = dataset.pixel_array
    scaled = apply_modality_lut(stored, dataset).astype(np.float64)
    return {
        "rows": int(dataset.Rows),
        "columns": int(dataset.Columns),
        "stored": stored,
        "hu": scaled,
    }


def test_dicom_image_loader_decodes_compressed_ct_slices(
    built_frontend, login_page, page_url, surgeon_a, patient_a
):
    folder = shared_path("dicom", "transfer_syntaxes")
    study = save_study(patient_a, phantom_hu((4, 16, 16)), affine_for())
    page = login_page(surgeon_a)
    served = {}

    def fulfil(route):
        name = route.request.url.rsplit("/", 1)[-1]
        body = served.get(name)
        if body is None:
            route.fulfill(status=404, body=b"")
        else:
            route.fulfill(status=200, body=body, content_type="application/dicom")

    page.route("**/__test_dicom__/*", fulfil)
    # Worker requests are reported on the context: "<path> <status> <content type>".
    responses = []
    page.context.on(
        "response",
        lambda response: responses.append(
            f"{response.url.split('/', 3)[-1]} {response.status} "
            f"{(response.headers.get('content-type') or '').split(';')[0]}"
        ),
    )
    page.goto(page_url("records:study-detail", study.pk))
    page.wait_for_function("() => window.orthofuseViewer && window.orthofuseViewer.ready")
    for label, file_name in SYNTAXES.items():
        path = folder / file_name
        served[f"{label}.dcm"] = path.read_bytes()
        stats = page.evaluate(
            "(url) => window.orthofuseViewer.decodeDicom(url)", f"/__test_dicom__/{label}.dcm"
        )
        expected = reference_stats(path)
        assert (stats["rows"], stats["columns"]) == (expected["rows"], expected["columns"]), label
        values = expected["hu"] if stats["preScaled"] else expected["stored"].astype(np.float64)
        assert stats["min"] == pytest.approx(values.min(), abs=0.5), label
        assert stats["max"] == pytest.approx(values.max(), abs=0.5), label
        assert stats["mean"] == pytest.approx(values.mean(), abs=0.05), label
    assert "static/dist/decodeImageFrameWorker.js 200 text/javascript" in responses
    assert "static/dist/codecs/openjpegwasm_decode.wasm 200 application/wasm" in responses
    assert "static/dist/codecs/charlswasm_decode.wasm 200 application/wasm" in responses
    wasm_errors = [e for e in page.console_errors if "wasm" in e.lower() or "mime" in e.lower()]
    assert not wasm_errors
