"""OrthoFuse Django project: settings, URLs, the Celery app and the clinical apps."""

from .celery import app as celery_app

__all__ = ["celery_app"]
