"""A network device (C-arm) seen by the listener, matched by DeviceSerialNumber / StationName."""

from __future__ import annotations

from django.db import models

from webapp.records.models import CArm


class DicomDevice(models.Model):
    """Which C-arm sends as which station. Devices created by the listener start flagged
    ``needs_calibration`` until a calibration admin calibrates them and clears the flag."""

    carm = models.ForeignKey(CArm, on_delete=models.CASCADE, related_name="dicom_devices")
    station_name = models.CharField(max_length=64, blank=True)
    device_serial_number = models.CharField(max_length=64, blank=True)
    manufacturer = models.CharField(max_length=200, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    auto_created = models.BooleanField(default=False)
    needs_calibration = models.BooleanField(default=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["station_name", "device_serial_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["station_name", "device_serial_number"], name="unique_dicom_device"
            ),
        ]

    def __str__(self) -> str:
        ident = self.device_serial_number or self.station_name
        flag = " (uncalibrated)" if self.needs_calibration else ""
        return f"{ident} -> {self.carm.name}{flag}"
