"""The trained model a benchmark registers with: the cached one when it was trained on
this CT and camera, else one trained now at the preset (or clock budget) and cached."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from registration.engine.model_io import (
    ModelError,
    ct_fingerprint,
    load_model,
    save_model,
    versions,
)
from registration.engine.training import clock_bounded, get_preset, train_model
from simulation import heldout


def model_for(name: str, volume, *, preset_name: str, train_minutes: float | None,
              models_dir: Path, device: str, overrides: dict,
              log: Callable[[str], object]):  # fmt: skip
    """(loaded model, training info) for the CT called ``name``, cached in
    ``models_dir/<name>_<preset>[_<minutes>min]``; ``overrides`` shrink the preset (the
    environment's training settings); training progress goes to ``log``."""
    cam = heldout.bench_camera()
    fp = ct_fingerprint(volume.array, volume.affine)
    preset = get_preset(preset_name, overrides)
    tag = f"{name}_{preset_name}"
    if train_minutes is not None:
        preset = clock_bounded(preset, train_minutes)
        tag += f"_{train_minutes:g}min"
    mdir = Path(models_dir) / tag
    model = None
    train_info = {}
    try:
        model = load_model(mdir, device)
        if model.meta.get("ct_fingerprint") != fp or model.meta.get("camera") != cam.to_json():
            model = None
        else:
            train_info = {"reused": str(mdir)}
    except ModelError:
        model = None
    if model is None:
        log(f"[{name}] training a {preset_name} model ({preset.max_seconds / 60:g} min budget) ...")
        tr = train_model(volume, cam, preset=preset, seed=0, device=device,
                         log=lambda m: log(f"[{name}] {m}"))
        meta = tr.meta
        meta.update(ct_fingerprint=fp, ct_shape=list(volume.shape), versions=versions())
        save_model(mdir, tr.net, meta)
        model = load_model(mdir, device)
    train_info.update(
        seconds=model.meta["training"]["seconds"], steps=model.meta["training"]["steps_done"],
        final_median_error_mm=model.meta["training"].get("final_median_error_mm"),
    )
    return model, train_info
