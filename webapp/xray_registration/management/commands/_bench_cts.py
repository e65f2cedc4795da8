"""The CTs of the registration benchmarks (``bench_registration``, ``bench_self_check``):
the ``--ct`` paths or those of the shared data, loaded with refusals as CommandError."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from simulation import heldout
from simulation.heldout import PartsNotOnOneGrid
from webapp.xray_registration.management.commands._regio import one_line

DEFAULT_CT_DIR = Path(settings.ORTHOFUSE_SHARED_DATA) / "ct"


def load_bench_ct(path: Path):
    """:func:`simulation.heldout.load_bench_ct`, its refusals as CommandError."""
    from dicomio.errors import InputRefused

    try:
        return heldout.load_bench_ct(path)
    except PartsNotOnOneGrid as exc:
        raise CommandError(str(exc)) from exc
    except InputRefused as exc:
        raise CommandError(f"cannot load {path}: {one_line(exc)}") from exc


def default_cts() -> list[Path]:
    if not DEFAULT_CT_DIR.is_dir():
        return []
    out = [DEFAULT_CT_DIR / "abdomen_pelvis_totalseg.nii.gz"]
    out += sorted(p for p in DEFAULT_CT_DIR.glob("pelvis_bone_*") if p.is_dir())
    return [p for p in out if p.exists()]


def bench_cts(given: list[str] | None) -> list[Path]:
    """The CTs of a benchmark: the ``--ct`` paths, else those of the shared data; each
    must exist (CommandError otherwise)."""
    cts = [Path(p) for p in given] if given else default_cts()
    if not cts:
        raise CommandError("no CT given and ../shared/data/ct not found: pass --ct PATH")
    for p in cts:
        if not p.exists():
            raise CommandError(f"CT not found: {p}")
    return cts


def bench_ct_name(path: Path) -> str:
    """A CT's name in tables and model tags: the file or folder name without .nii.gz."""
    return path.name.replace(".nii.gz", "")
