"""The registration app: models, services, jobs, pages and API over the Django-free ``registration.engine``."""
