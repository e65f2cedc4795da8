"""Registering an X-ray as stored (no Django): its pixels are brought to line-integral
form once (:func:`registration.engine.xray_input.line_integral_with_info`, polarity and
display form read from the image's own noise), registered, and when the network finds no
consistent pose, or the best pose matches the X-ray poorly, the opposite polarity is tried
once (the noise can mislead: a bone-white log display stored without a photometric flag,
as a PNG, has noise that grows with brightness like linear counts do). A pose found on a
coarse CT carries a caution (:func:`registration.engine.quality.coarse_ct_caution`). The
site's job and ``register_xray`` both register through :func:`register_stored`, so they
treat an image the same way.
"""

from __future__ import annotations

import numpy as np

from dicomio.errors import InputRefused
from geometry.camera import Camera
from registration.engine.pipeline import RegistrationOptions, RegistrationResult, register
from registration.engine.quality import coarse_ct_caution, voxel_edges_mm
from registration.engine.xray_input import line_integral_with_info


def camera_for_stored_image(camera: Camera | None, xray) -> Camera:
    """The pinhole camera of a stored X-ray's pixel grid: ``camera`` (from camera.json)
    rescaled to the image when it was resampled, or, when None, built from the DICOM
    header (source-to-detector distance, pixel spacing in mm, principal point at the
    centre). ``xray`` is a :class:`dicomio.XrayImage`. Raises ``InputRefused`` when neither
    gives a camera or when the aspect ratios differ."""
    H, W = xray.pixels.shape
    if camera is None:
        g = xray.geometry
        if xray.file_format == "png":
            raise InputRefused("a PNG X-ray carries no geometry: pass --camera camera.json")
        if not g.get("source_to_detector_mm") or not g.get("pixel_spacing_mm"):
            raise InputRefused(
                "the DICOM X-ray lacks DistanceSourceToDetector or pixel spacing: pass --camera camera.json"
            )
        sx, sy = g["pixel_spacing_mm"]
        return Camera.from_geometry(W, H, g["source_to_detector_mm"], sx, sy)
    if (camera.width, camera.height) == (W, H):
        return camera
    if abs(camera.width / camera.height - W / H) > 0.01 * (W / H):
        raise InputRefused(
            f"the X-ray is {W}x{H} pixels but the camera is {camera.width}x{camera.height} "
            "with a different aspect ratio"
        )
    return camera.scaled(W, H)


# Failed checks after which the other polarity is worth one more try.
POLARITY_SENSITIVE_CHECKS = ("network", "pnp", "pose", "similarity")


def register_stored(
    volume,
    model,
    pixels: np.ndarray,
    photometric: str,
    camera: Camera,
    *,
    bits_stored: int | None = None,
    T_init: np.ndarray | None = None,
    initial_kind: str = "init",
    options: RegistrationOptions | None = None,
    renderer=None,
) -> RegistrationResult:
    """Register stored ``pixels`` (H, W of ``camera``); ``model`` None is training-free.

    The result's ``stages["preprocess"]`` says which polarity and display form were used
    and whether the noise decided them; ``seconds`` adds up both tries when there were two.
    ``renderer`` (a DRR renderer of ``volume``) may be passed to reuse it across images.
    Raises ``ValueError`` for inputs the pipeline refuses outright (size mismatch).
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    result: RegistrationResult | None = None
    tried: list[str] = []
    for polarity in ("detect", None):
        if float(np.ptp(pixels)) == 0.0:  # blank: let the self-check say so
            li, valid = np.zeros(pixels.shape, np.float32), np.ones(pixels.shape, bool)
            info = {"polarity": "none", "form": "none", "detected": False}
        else:
            if polarity is None:
                polarity = "bone_bright" if tried[0] == "bone_dark" else "bone_dark"
            li, valid, info = line_integral_with_info(
                pixels, photometric, bits_stored=bits_stored, polarity=polarity
            )
        attempt = register(volume, model, li, valid, camera, T_init=T_init, options=options,
                           renderer=renderer, initial_kind=initial_kind)
        tried.append(info["polarity"])
        attempt.stages.setdefault("preprocess", {"seconds": 0.0}).update(
            polarity=info["polarity"], display_form=info["form"],
            polarity_from_noise=bool(info["detected"]),
        )
        if result is not None:
            attempt.seconds += result.seconds
            if attempt.status != "ok" and _similarity(result) > _similarity(attempt):
                result.seconds = attempt.seconds  # both refused: report the closer match
                attempt = result
        result = attempt
        failed = result.stages.get("quality", {}).get("failed_check")
        if result.status == "ok" or failed not in POLARITY_SENSITIVE_CHECKS or info["polarity"] == "none":
            break
    assert result is not None
    result.stages["preprocess"]["polarities_tried"] = list(tried)
    edges = voxel_edges_mm(volume)
    if result.status == "ok" and (caution := coarse_ct_caution(edges)):
        result.message = f"{result.message}; {caution}"
        result.stages.setdefault("quality", {})["coarse_ct"] = True
    elif (result.stages.get("quality", {}).get("failed_check") == "consistency"
          and coarse_ct_caution(edges)):
        # a pose the view does not pin down on a coarse CT: say what would help
        result.message = (f"{result.message}; the CT's voxels are up to {max(edges):.1f} mm, "
                          f"too coarse to show the depth along the beam: a thin-slice CT of "
                          f"this region would")
    return result


def _similarity(result: RegistrationResult) -> float:
    value = float(result.similarity)
    return value if np.isfinite(value) else -np.inf
