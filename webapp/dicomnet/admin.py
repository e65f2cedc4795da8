"""Admin for the devices the DICOM listener has seen (uncalibrated ones first)."""

from django.contrib import admin

from webapp.dicomnet.models import DicomDevice


@admin.register(DicomDevice)
class DicomDeviceAdmin(admin.ModelAdmin):
    list_display = ("station_name", "device_serial_number", "carm", "needs_calibration", "last_seen")
    list_filter = ("needs_calibration", "auto_created")
    ordering = ("-needs_calibration", "station_name")
    search_fields = ("station_name", "device_serial_number", "carm__name")
