"""Simulated intra-operative shots for the session benchmark and its tests: the tiny
synthetic bone CT (32^3 voxels of 6 mm, centred on the LPS origin) and C-arm shots of it as
a flat-panel C-arm sends them by DICOM (XA, MONOCHROME2, bone dark, 16-bit).

Geometry: 64 x 64 detector of 3.6 mm pixels, source-to-detector 1000 mm, source-to-patient
650 mm; C-arm angles in degrees (PositionerPrimaryAngle LAO+/RAO-, secondary cranial+).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

XA_SOP = "1.2.840.10008.5.1.4.1.1.12.1"
SIZE_PX = 64
SPACING_MM = 3.6
SDD_MM = 1000.0
SIP_MM = 650.0
CT_VOXELS = 32
CT_SPACING_MM = 6.0
BENCH_STATION = "BENCH-FP"  # the flat-panel C-arm the shots come from (no calibration)


def bench_volume():
    """The tiny synthetic bone CT (``CTVolume``, HU, LPS)."""
    from simulation.phantom_ct import synthetic_bone_ct

    return synthetic_bone_ct(CT_VOXELS, CT_SPACING_MM)


def bench_angles(n: int, seed: int = 0) -> list[tuple[float, float]]:
    """``n`` (primary, secondary) C-arm angles in degrees, seeded: primary in [-40, 40],
    secondary in [-15, 15], rounded to 0.5 degree."""
    rng = np.random.default_rng(seed)
    primary = np.round(rng.uniform(-40.0, 40.0, n) * 2) / 2
    secondary = np.round(rng.uniform(-15.0, 15.0, n) * 2) / 2
    return [(float(p), float(s)) for p, s in zip(primary, secondary, strict=True)]


def shot_pixels(renderer, primary_deg: float, secondary_deg: float) -> np.ndarray:
    """The stored image (uint16 (64, 64), bright where unattenuated) of the CT behind
    ``renderer`` (a ``DrrRenderer``) seen at the C-arm angles, isocentre at the origin."""
    from geometry.camera import Camera
    from geometry.carm import carm_pose

    camera = Camera.from_geometry(SIZE_PX, SIZE_PX, SDD_MM, SPACING_MM, SPACING_MM)
    T = carm_pose(float(primary_deg), float(secondary_deg), SIP_MM, [0.0, 0.0, 0.0])
    line_integrals = renderer.render_numpy(camera, T, samples_per_ray=96)
    return np.clip(np.round(60000.0 * np.exp(-line_integrals)), 0, 65535).astype(np.uint16)


def shot_dataset(
    pixels: np.ndarray,
    *,
    mrn: str,
    primary_deg: float,
    secondary_deg: float,
    station: str = BENCH_STATION,
    patient_name: str = "Bench^Session",
) -> Dataset:
    """An uncompressed XA instance of ``pixels`` for the patient ``mrn`` from a flat-panel
    C-arm named ``station`` (XRayReceptorType DIGITAL_DETECTOR), with the header geometry."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("shot.dcm", {}, file_meta=meta, preamble=b"\0" * 128,
                     is_implicit_VR=False, is_little_endian=True)
    ds.SOPClassUID = XA_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "XA"
    ds.PatientID, ds.PatientName = mrn, patient_name
    ds.SeriesDescription = f"shot {primary_deg:+.1f}/{secondary_deg:+.1f}"
    ds.StationName = station
    ds.Manufacturer = "Simulated"
    ds.XRayReceptorType = "DIGITAL_DETECTOR"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImagerPixelSpacing = [f"{SPACING_MM:g}", f"{SPACING_MM:g}"]
    ds.DistanceSourceToDetector = f"{SDD_MM:g}"
    ds.DistanceSourceToPatient = f"{SIP_MM:g}"
    ds.PositionerPrimaryAngle = f"{primary_deg:g}"
    ds.PositionerSecondaryAngle = f"{secondary_deg:g}"
    ds.PixelData = arr.tobytes()
    return ds


def c_store(port: int, ds: Dataset, *, host: str = "127.0.0.1", called_ae: str = "ORTHOFUSE",
            calling_ae: str = "BENCHSCU") -> tuple[int, str]:
    """Send ``ds`` on one association (as a C-arm sends a shot); ``(status, error comment)``,
    status -1 when the association was not accepted."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        return -1, "association not accepted"
    try:
        status = assoc.send_c_store(ds)
        if not status:
            return -1, "no response"
        return int(status.Status), str(status.get("ErrorComment", ""))
    finally:
        assoc.release()
