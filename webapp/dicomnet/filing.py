"""Filing a received instance: the patient (by MRN) and the C-arm (by station / serial).

Both run inside the caller's transaction, so a refused instance rolls back a patient or a
device it would have created.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from pydicom.dataset import Dataset

from webapp.dicomnet.instance import patient_id, text
from webapp.dicomnet.models import DicomDevice
from webapp.records.models import CareTeam, CArm, Patient

_SEX = {"F": "F", "M": "M", "O": "O"}


def _birth_date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None


def patient_for(ds: Dataset, care_team: str) -> tuple[Patient, bool]:
    """The patient whose MRN is the PatientID; a new MRN creates the patient in the care
    team named ``care_team`` (created when missing). Returns ``(patient, created)``."""
    mrn = patient_id(ds)
    patient = Patient.objects.filter(mrn=mrn).first()
    if patient is not None:
        return patient, False
    name = text(ds, "PatientName").split("^")
    try:
        with transaction.atomic():
            patient = Patient.objects.create(
                mrn=mrn,
                family_name=name[0][:200],
                given_name=(name[1] if len(name) > 1 else "")[:200],
                birth_date=_birth_date(text(ds, "PatientBirthDate")),
                sex=_SEX.get(text(ds, "PatientSex").upper(), "U"),
            )
            team, _ = CareTeam.objects.get_or_create(name=care_team)
            patient.care_teams.add(team)
    except IntegrityError:  # another association created it first
        return Patient.objects.get(mrn=mrn), False
    return patient, True


def _detector_type(ds: Dataset) -> str:
    receptor = text(ds, "XRayReceptorType").upper()
    if receptor == "DIGITAL_DETECTOR":
        return CArm.DetectorType.FLAT_PANEL
    if receptor == "IMG_INTENSIFIER":
        return CArm.DetectorType.IMAGE_INTENSIFIER
    if text(ds, "Modality").upper() in ("DX", "CR"):
        return CArm.DetectorType.FLAT_PANEL
    return CArm.DetectorType.IMAGE_INTENSIFIER  # the cautious guess: dewarping needed


def _new_carm_name(station: str, serial: str, manufacturer: str) -> str:
    base = " ".join(p for p in (manufacturer, station or "C-arm", f"#{serial}" if serial else "") if p)
    name, n = base[:190], 1
    while CArm.objects.filter(name=name).exists():
        n += 1
        name = f"{base[:185]} ({n})"
    return name


def _calibrated(carm: CArm) -> bool:
    """Whether the C-arm has an active calibration profile (calibration app)."""
    return carm.profiles.filter(status="active").exists()


def carm_for(ds: Dataset) -> tuple[CArm | None, bool]:
    """The C-arm that sent ``ds``, found by DeviceSerialNumber, else StationName (a device
    record, then a C-arm named like the station). An unknown device is created with its
    C-arm, flagged ``needs_calibration``; the flag follows the C-arm's active calibration
    profile on every later instance. ``(None, False)`` when the header names neither."""
    station = text(ds, "StationName")[:64]
    serial = text(ds, "DeviceSerialNumber")[:64]
    if not station and not serial:
        return None, False
    devices = DicomDevice.objects.select_related("carm")
    device = (
        devices.filter(device_serial_number=serial).first()
        if serial
        else devices.filter(station_name=station, device_serial_number="").first()
    )
    if device is not None:
        device.needs_calibration = not _calibrated(device.carm)
        device.save(update_fields=["last_seen", "needs_calibration"])
        return device.carm, False
    manufacturer = text(ds, "Manufacturer")[:200]
    carm = CArm.objects.filter(name=station).first() if station else None
    created = carm is None
    if carm is None:
        rows, cols = ds.get("Rows"), ds.get("Columns")
        carm = CArm.objects.create(
            name=_new_carm_name(station, serial, manufacturer),
            manufacturer=manufacturer,
            model_name=text(ds, "ManufacturerModelName")[:200],
            detector_type=_detector_type(ds),
            detector_width_px=int(cols) if isinstance(cols, int) and cols > 0 else None,
            detector_height_px=int(rows) if isinstance(rows, int) and rows > 0 else None,
        )
    try:
        with transaction.atomic():
            DicomDevice.objects.create(
                carm=carm,
                station_name=station,
                device_serial_number=serial,
                manufacturer=manufacturer,
                model_name=text(ds, "ManufacturerModelName")[:200],
                auto_created=created,
                needs_calibration=not _calibrated(carm),
            )
    except IntegrityError:  # the same device, recorded by a concurrent association
        pass
    return carm, created
