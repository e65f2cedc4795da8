from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "webapp.core"
    label = "core"

    def ready(self) -> None:
        from webapp.core import signals  # noqa: F401 - connects the login audit receivers
        from webapp.core.startup import refuse_insecure_start

        refuse_insecure_start()  # a web server never starts on the dev secret key
