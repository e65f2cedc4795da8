"""Helpers for the grid-plate tests: small simulated plate frames, PNG and DICOM files."""

from __future__ import annotations

import cv2
import numpy as np

from calibration.engine.phantom import phantom_from_dict
from simulation.phantom_frames import SimGeometry
from simulation.plate_frames import plate_distortion, simulate_plate_image

SP = 0.2  # mm per pixel: a 3 mm pitch is 15 px


def plate(lattice="square", marker="hole", pitch=3.0, diameter=1.2, name="test plate"):
    return phantom_from_dict(
        {
            "name": name,
            "grid": {
                "lattice": lattice,
                "pitch_mm": pitch,
                "marker": marker,
                "diameter_mm": diameter,
            },
        }
    )


def small_frame(ph, seed=0, size=512, strength=1.0, **kw):
    """A size x size plate frame (0.2 mm pixels) through a typical image intensifier."""
    g = SimGeometry(size, size, (SP, SP))
    dist = plate_distortion(seed, strength=strength, radius_mm=0.478 * size * SP)
    return simulate_plate_image(ph, g, dist, rng=seed, **kw)


def write_png(path, image) -> None:
    assert cv2.imwrite(str(path), np.asarray(image).astype(np.uint16))


def write_rf(path, pixels, spacing_row_col, *, sdd=None, photometric="MONOCHROME2") -> None:
    """A minimal 12-bit RF DICOM (ImagerPixelSpacing row/col, optional SDD)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RF"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.ImagerPixelSpacing = [str(v) for v in spacing_row_col]
    if sdd is not None:
        ds.DistanceSourceToDetector = str(sdd)
    ds.PixelData = np.asarray(pixels).astype(np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
