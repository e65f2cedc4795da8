"""The calibration app: C-arm profiles and phantoms, jobs, pages and API over the Django-free ``calibration.engine``."""
