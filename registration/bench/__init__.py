"""Benchmark-only code: out-of-distribution X-ray shots and their report.

Nothing here is imported by the product (``registration.engine``, the site); it judges
the product from outside. The shot generator renders with nanodrr (not our DRR) and forms
X-rays with its own chain (not ``engine.xray_sim`` or the training augmentation).
"""
