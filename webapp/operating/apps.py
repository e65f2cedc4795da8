from django.apps import AppConfig


class OperatingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webapp.operating"
    label = "operating"
    verbose_name = "Intra-operative sessions"

    def ready(self) -> None:
        from webapp.operating.services import arrival_receiver
        from webapp.records.signals import xray_stored

        xray_stored.connect(arrival_receiver, dispatch_uid="operating-arrival-hook")
