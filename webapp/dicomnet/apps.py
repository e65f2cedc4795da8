from django.apps import AppConfig


class DicomNetConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webapp.dicomnet"
    label = "dicomnet"
    verbose_name = "DICOM network"
