import importlib
import importlib.util

from django.apps import AppConfig, apps


class JobsConfig(AppConfig):
    name = "webapp.jobs"
    label = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        """Load every job handler: the built-in ones and each project app's ``<app>.jobs``
        module (e.g. ``webapp.calibration.jobs``, ``webapp.xray_registration.jobs``, ``webapp.planning.jobs``,
        ``webapp.review.jobs``), so the web process and every worker know the same kinds."""
        import webapp.celery  # noqa: F401 - the project's Celery app becomes current_app
        from webapp.jobs import handlers  # noqa: F401 - registers the diagnostic kinds

        for config in apps.get_app_configs():
            if config.name.startswith("django.") or config.name == self.name:
                continue
            module = f"{config.name}.jobs"
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)  # errors inside the module are real: let them show
