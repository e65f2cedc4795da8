"""Writing benchmark shots as a user would hand them over: a 16-bit PNG with camera.json
(no C-arm angles anywhere) or a DICOM XA/RF instance whose header carries the C-arm angles,
the distances and the pixel pitch (camera.json beside it too: the calibrated principal
point has no header field). Files are written to a temporary name and renamed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

XA_SOP = "1.2.840.10008.5.1.4.1.1.12.1"
RF_SOP = "1.2.840.10008.5.1.4.1.1.12.2"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit greyscale PNG of ``pixels`` (uint16 (H, W))."""
    path = Path(path)
    arr = np.asarray(pixels, np.uint16)

    def w(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp) + ".png", arr):
            raise OSError(f"cannot write {path}")
        os.replace(str(tmp) + ".png", tmp)

    _atomic(path, w)
    return path


def write_camera_json(path: Path, camera: dict) -> Path:
    path = Path(path)
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(camera, indent=1)))
    return path


def write_dicom(path: Path, pixels: np.ndarray, photometric: str, *, modality: str,
                pitch_mm: float, sdd_mm: float, sid_mm: float, lao_deg: float,
                cranial_deg: float) -> Path:
    """An uncompressed XA or RF instance (``modality``) with PositionerPrimaryAngle =
    LAO (+) / RAO (-), PositionerSecondaryAngle = cranial (+) / caudal (-), in degrees."""
    if modality not in ("XA", "RF"):
        raise ValueError(f"modality must be XA or RF, got {modality!r}")
    arr = np.ascontiguousarray(pixels, dtype=np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA_SOP if modality == "XA" else RF_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    ds.PatientID, ds.PatientName = "OODBENCH", "Bench^OOD"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImagerPixelSpacing = [f"{pitch_mm:.6f}", f"{pitch_mm:.6f}"]
    ds.DistanceSourceToDetector = f"{sdd_mm:.3f}"
    ds.DistanceSourceToPatient = f"{sid_mm:.3f}"
    ds.PositionerPrimaryAngle = f"{lao_deg:.2f}"
    ds.PositionerSecondaryAngle = f"{cranial_deg:.2f}"
    ds.PixelData = arr.tobytes()
    _atomic(Path(path), lambda tmp: pydicom.dcmwrite(str(tmp), ds, enforce_file_format=True))
    return Path(path)
