"""Benchmark-only code for ``bench_calibration`` (Django-free): simulated frame families
beyond the shipped clip-on phantom, each case simulated, calibrated and judged against its
ground truth. Nothing in ``calibration.engine`` or the site imports it.
"""
