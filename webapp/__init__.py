"""OrthoFuse Django project: settings, URLs, the Celery app and the clinical apps.

The Celery app (``webapp.celery``) is loaded by ``JobsConfig.ready`` in Django processes and
by ``celery -A webapp`` in workers, not here: importing the Django-free engines (which use
``dicomio``) must not pull in Celery or Django.
"""
