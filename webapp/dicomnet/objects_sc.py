"""The fused overlay (CT bone edges on the X-ray) as an RGB Secondary Capture (highdicom),
from plain arrays (no Django).

``edges_from_overlay`` recovers the edge mask from the stored overlay picture (edges are
painted in a colour over a grey X-ray: a pixel is an edge where its channels differ);
``fuse`` paints those edges over the X-ray's 8-bit display; ``overlay_secondary_capture``
wraps the RGB image as a DICOM Secondary Capture in the source X-ray's patient and study,
referencing the X-ray (Source Image Sequence) when it came as DICOM.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from webapp.dicomnet.objects_common import MANUFACTURER, PatientStudy, SourceImage

EDGE_COLOUR = (0, 255, 0)
SERIES_NUMBER = 9001


def edges_from_overlay(overlay_rgb: np.ndarray) -> np.ndarray:
    """Bool (H, W): pixels of an overlay picture that are not grey (the painted edges)."""
    rgb = np.asarray(overlay_rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"the overlay is not an RGB picture (shape {rgb.shape})")
    r, g, b = (rgb[..., k].astype(np.int16) for k in range(3))
    return (r != g) | (g != b)


def fuse(grey: np.ndarray, edges: np.ndarray, colour: tuple[int, int, int] = EDGE_COLOUR,
         ) -> np.ndarray:
    """uint8 (H, W, 3) RGB: the 8-bit X-ray display with ``edges`` painted in ``colour``."""
    grey = np.asarray(grey)
    edges = np.asarray(edges, dtype=bool)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError("the X-ray display must be a 2-D uint8 image")
    if edges.shape != grey.shape:
        raise ValueError(
            f"the overlay ({edges.shape[1]}x{edges.shape[0]}) does not match the X-ray "
            f"({grey.shape[1]}x{grey.shape[0]})"
        )
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[edges] = np.asarray(colour, dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def overlay_secondary_capture(
    rgb: np.ndarray,
    context: PatientStudy,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    source: SourceImage | None = None,
    description: str = "OrthoFuse CT bone edges on X-ray",
    pixel_spacing_mm: tuple[float, float] | None = None,
    patient_orientation: tuple[str, str] | None = None,
) -> Dataset:
    """An RGB Secondary Capture of ``rgb`` (uint8 (H, W, 3)) in ``context``'s patient and
    study; ``source`` is the X-ray it was made from (None for an X-ray imported as PNG);
    ``patient_orientation`` is the X-ray's (row, column) directions, left empty (type 2)
    when unknown."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("the fused image must be uint8 (H, W, 3)")
    sc = hd.sc.SCImage(
        pixel_array=rgb,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=context.study_instance_uid,
        series_instance_uid=series_instance_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_id=context.patient_id,
        patient_name=context.patient_name or None,
        patient_birth_date=context.birth_date or None,
        patient_sex=context.sex or None,
        accession_number=context.accession_number or None,
        study_id=context.study_id or None,
        study_date=context.study_date or None,
        study_time=context.study_time or None,
        referring_physician_name=context.referring_physician or None,
        pixel_spacing=pixel_spacing_mm,
        patient_orientation=("L", "F"),  # placeholder, replaced below
    )
    sc.PatientOrientation = list(patient_orientation) if patient_orientation else ""
    sc.SeriesDescription = description[:64]
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = "CT bone edges (DRR at the registered pose) drawn on the X-ray"
    sc.BurnedInAnnotation = "NO"
    sc.Laterality = ""  # type 2C: unknown
    if source is not None:
        item = Dataset()
        item.ReferencedSOPClassUID = source.sop_class_uid
        item.ReferencedSOPInstanceUID = source.sop_instance_uid
        sc.SourceImageSequence = [item]
    return sc
