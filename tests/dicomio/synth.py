"""Writing small synthetic DICOM CT series and X-rays for tests (seeded, tiny)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
XA_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"


def ct_slice(
    pixels: np.ndarray,
    *,
    position,
    orientation=(1, 0, 0, 0, 1, 0),
    spacing=(1.0, 1.0),
    series_uid: str,
    study_uid: str,
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    patient_name: str = "Doe^Jane",
    patient_id: str = "PID-12345",
) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.StudyDate = "20240102"
    ds.SeriesDescription = "synthetic"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:.6f}" for v in spacing]
    ds.SliceThickness = "1"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = np.ascontiguousarray(pixels.astype("<i2")).tobytes()
    return ds


def write_series(
    folder: Path,
    stored: np.ndarray,
    positions: np.ndarray,
    *,
    orientation=(1, 0, 0, 0, 1, 0),
    spacing=(1.0, 1.0),
    shuffle_seed: int | None = 0,
    **kwargs,
) -> list[Path]:
    """Write slices ``stored[k]`` at ``positions[k]``; file order shuffled (seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = kwargs.pop("series_uid", None) or generate_uid()
    study_uid = kwargs.pop("study_uid", None) or generate_uid()
    names = np.arange(len(stored))
    if shuffle_seed is not None:
        names = np.random.default_rng(shuffle_seed).permutation(len(stored))
    paths = []
    for k in range(len(stored)):
        ds = ct_slice(
            stored[k],
            position=positions[k],
            orientation=orientation,
            spacing=spacing,
            series_uid=series_uid,
            study_uid=study_uid,
            instance=k + 1,
            **kwargs,
        )
        path = folder / f"f{names[k]:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def xray_dataset(
    pixels: np.ndarray,
    *,
    modality: str = "XA",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    sdd: float | None = 1000.0,
    sod: float | None = 700.0,
    imager_spacing=(0.2, 0.3),
    primary: float | None = 10.0,
    secondary: float | None = -5.0,
    frames: int = 1,
) -> FileDataset:
    """A minimal DICOM X-ray; ``pixels`` (H, W) or (frames, H, W) uint16."""
    meta = FileMetaDataset()
    sop_class = XA_STORAGE if modality in ("XA", "RF") else DX_STORAGE
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"MZ" + b"\x90" * 126)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "Doe^John"
    ds.PatientID = "X-1"
    arr = np.asarray(pixels)
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = arr.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if sdd is not None:
        ds.DistanceSourceToDetector = f"{sdd:g}"
    if sod is not None:
        ds.DistanceSourceToPatient = f"{sod:g}"
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = [f"{v:g}" for v in imager_spacing]
    if primary is not None:
        ds.PositionerPrimaryAngle = f"{primary:g}"
    if secondary is not None:
        ds.PositionerSecondaryAngle = f"{secondary:g}"
    ds.PixelData = np.ascontiguousarray(arr.astype("<u2")).tobytes()
    return ds
