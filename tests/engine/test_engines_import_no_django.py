"""The science engines load without Django or Celery (they are plain NumPy/PyTorch code)."""

from __future__ import annotations

import subprocess
import sys

ENGINE_MODULES = [
    "webapp.dicomio",
    "registration.engine.drr",
    "registration.engine.pipeline",
    "registration.engine.training",
    "registration.engine.carm_shots",
    "calibration.engine.calibrate",
    "webapp.planning.engine.trajectory",
]


def test_engines_import_without_django_or_celery():
    code = (
        "import importlib, sys\n"
        f"for name in {ENGINE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'kombu'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engines imported {out.stdout.strip()}"
