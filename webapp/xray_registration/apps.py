from django.apps import AppConfig


class XrayRegistrationConfig(AppConfig):
    """X-ray-to-CT registration. The label is ``xray_registration``: ``registration`` is the
    template folder of Django's own sign-in pages, and an app must not share that name."""

    name = "webapp.xray_registration"
    label = "xray_registration"
    verbose_name = "X-ray registration"
