"""Endpoints that feed the browser CT viewer (static/dist/ct_viewer.js).

* ``records:study-volume-meta``: JSON geometry of a study's volume (dimensions, spacing,
  LPS direction and origin, the 4x4 affine, HU range, voxel type).
* ``records:study-volume-data``: the voxels as raw little-endian int16 HU, C order of
  (k, j, i), i.e. column index varying fastest; one ``download`` audit event per load.

Both go through :func:`webapp.records.access.get_visible_or_404` (another team's study
answers 404) and never answer a traceback: an unreadable volume is a JSON 422 with a
one-line ``detail``.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

import numpy as np
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.records.access import get_visible_or_404
from webapp.records.models import CTStudy

log = logging.getLogger(__name__)

VOXEL_DTYPE = np.dtype("<i2")
NO_STORE = "private, no-store"


class VolumeUnavailable(Exception):
    """The stored volume cannot be served; the message is shown to the user."""


def volume_geometry(shape_kji: tuple[int, int, int], affine: np.ndarray) -> dict:
    """Viewer geometry of a volume of shape (k, j, i) whose ``affine`` maps voxel index
    (i, j, k, 1) to LPS mm (CONVENTIONS.md).

    Returns ``dimensions`` [ni, nj, nk], ``spacing`` [di, dj, dk] in mm, ``direction`` (the
    unit i, j and k axes in LPS, 9 numbers, i axis first: Cornerstone's layout), ``origin``
    (LPS mm of voxel (0, 0, 0)) and ``affine`` (4x4 nested list).
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise VolumeUnavailable("the study has no valid 4x4 affine")
    columns = affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(columns)) < 1e-9:
        raise VolumeUnavailable("the study affine is singular (zero voxel size)")
    direction = columns / spacing
    nk, nj, ni = (int(n) for n in shape_kji)
    return {
        "dimensions": [ni, nj, nk],
        "spacing": [float(v) for v in spacing],
        "direction": [float(v) for v in direction.T.reshape(-1)],
        "origin": [float(v) for v in affine[:3, 3]],
        "affine": affine.tolist(),
    }


def _npy_header(handle: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) of an .npy stream, without reading data."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:  # pragma: no cover - numpy refuses unknown versions in read_magic
        raise ValueError(f"unsupported .npy version {version}")
    return tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype), handle.tell()


def _load_volume_array(study: CTStudy) -> tuple[np.ndarray, np.ndarray | None]:
    """The whole volume as int16 HU (k, j, i) plus its affine when the store knows one.

    Reads through ``webapp.records.volume_store.load_study_volume`` (any stored format).
    """
    from webapp.records.volume_store import load_study_volume

    volume = load_study_volume(study)
    array, affine = np.asarray(volume.array), np.asarray(volume.affine, dtype=np.float64)
    if array.ndim != 3:
        raise VolumeUnavailable(f"stored volume has shape {array.shape}, expected 3-D")
    if array.dtype != VOXEL_DTYPE:
        if np.issubdtype(array.dtype, np.floating):
            array = np.rint(array)
        array = np.clip(array, -32768, 32767).astype(VOXEL_DTYPE)
    return np.ascontiguousarray(array), affine


def _visible_study(request: HttpRequest, pk: int) -> CTStudy:
    study = get_visible_or_404(CTStudy.objects.select_related("patient"), request.user, pk=pk)
    if study.status != CTStudy.Status.READY or not study.volume_file:
        raise Http404("no volume stored for this study")
    return study


def _open_raw_int16(study: CTStudy) -> tuple[BinaryIO | None, tuple[int, ...] | None]:
    """An open handle positioned at the voxels when the stored file is a plain C-order
    little-endian int16 .npy (served without loading), else ``(None, shape or None)``."""
    try:
        handle = study.volume_file.open("rb")
    except (OSError, FileNotFoundError) as exc:
        raise VolumeUnavailable("the stored volume file is missing") from exc
    try:
        shape, fortran, dtype, offset = _npy_header(handle)
    except (ValueError, OSError):
        handle.close()
        return None, None
    if len(shape) == 3 and not fortran and dtype == VOXEL_DTYPE:
        handle.seek(0, 2)
        size = handle.tell() - offset
        if size == int(np.prod(shape)) * VOXEL_DTYPE.itemsize:
            handle.seek(offset)
            return handle, shape
    handle.close()
    return None, shape


def _study_affine(study: CTStudy) -> np.ndarray | None:
    try:
        affine = study.affine_array
    except (TypeError, ValueError):
        return None
    return affine if affine.shape == (4, 4) and np.all(np.isfinite(affine)) else None


def _recorded_shape(study: CTStudy) -> tuple[int, int, int] | None:
    shape = study.shape
    if (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(n, int) and n > 0 for n in shape)
    ):
        return tuple(shape)  # type: ignore[return-value]
    return None


def _is_local(study: CTStudy) -> bool:
    try:
        study.volume_file.storage.path(study.volume_file.name)
    except NotImplementedError:
        return False
    return True


def _refusal(message: str) -> JsonResponse:
    response = JsonResponse({"detail": message}, status=422)
    response["Cache-Control"] = NO_STORE
    return response


@login_required
@require_GET
def study_volume_meta(request: HttpRequest, pk: int) -> HttpResponse:
    """Geometry and voxel format of a study's volume (JSON, see :func:`volume_geometry`)."""
    study = _visible_study(request, pk)
    try:
        affine = _study_affine(study)
        shape = _recorded_shape(study)
        if shape is None or _is_local(study):
            # Local files: check the header (cheap). Remote storage would download the
            # whole object just for it, so there the recorded shape is trusted and the
            # data endpoint checks it.
            handle, shape = _open_raw_int16(study)
            if handle is not None:
                handle.close()
        if shape is None or affine is None or len(shape) != 3:
            array, stored_affine = _load_volume_array(study)
            shape = array.shape
            affine = stored_affine if stored_affine is not None else affine
        geometry = volume_geometry(shape, affine)
    except VolumeUnavailable as exc:
        return _refusal(str(exc))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a refusal, not a 500
        log.warning("CT study %s volume unreadable: %s", study.pk, exc)
        return _refusal(f"the stored volume cannot be read ({type(exc).__name__})")
    body = {
        "study_id": study.pk,
        "modality": study.modality or "CT",
        "series_instance_uid": study.series_instance_uid,
        "shape": [int(n) for n in shape],
        **geometry,
        "hu_min": study.hu_min,
        "hu_max": study.hu_max,
        "dtype": VOXEL_DTYPE.str,
        "byte_order": "little",
        "order": "C (k, j, i): i fastest",
        "data_bytes": int(np.prod(shape)) * VOXEL_DTYPE.itemsize,
    }
    response = JsonResponse(body)
    response["Cache-Control"] = NO_STORE
    return response


@login_required
@require_GET
def study_volume_data(request: HttpRequest, pk: int) -> HttpResponse:
    """All voxels as little-endian int16 HU in C order of (k, j, i); audited once per load."""
    study = _visible_study(request, pk)
    try:
        handle, shape = _open_raw_int16(study)
        payload = None
        if handle is None:
            array, _affine = _load_volume_array(study)
            shape = array.shape
            payload = array.tobytes(order="C")
        recorded = _recorded_shape(study)
        if recorded is not None and tuple(shape) != recorded:
            if handle is not None:
                handle.close()
            raise VolumeUnavailable(
                f"the stored volume has shape {list(shape)} but the study records {list(recorded)}"
            )
    except VolumeUnavailable as exc:
        return _refusal(str(exc))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a refusal, not a 500
        log.warning("CT study %s volume unreadable: %s", study.pk, exc)
        return _refusal(f"the stored volume cannot be read ({type(exc).__name__})")
    record(
        request,
        AuditEvent.Action.DOWNLOAD,
        patient=study.patient,
        obj=study,
        detail="CT voxels loaded in the viewer",
    )
    if payload is not None:
        response: HttpResponse = HttpResponse(payload, content_type="application/octet-stream")
        response["Content-Length"] = str(len(payload))
    else:
        response = FileResponse(handle, content_type="application/octet-stream")
        # The storage key is a random name; do not expose it as a download file name.
        response.headers.pop("Content-Disposition", None)
    response["Cache-Control"] = NO_STORE
    response["X-Content-Type-Options"] = "nosniff"
    return response
