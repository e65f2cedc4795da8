from django.apps import AppConfig


class CalibrationConfig(AppConfig):
    """C-arm calibration profiles and phantoms (label ``calibration``)."""

    name = "webapp.calibration"
    label = "calibration"
