from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data loader (``load_demo``), kept apart from the clinical apps."""

    name = "webapp.demo"
    label = "demo"
