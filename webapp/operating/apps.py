from django.apps import AppConfig


class OperatingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webapp.operating"
    label = "operating"
    verbose_name = "Intra-operative sessions"
