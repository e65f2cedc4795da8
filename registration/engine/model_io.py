"""Saving and loading a trained registration model directory.

A model directory holds ``weights.pt`` (the network's ``state_dict``) and ``model.json``
with everything needed to use the weights: preset, input size, the normalisation box in
LPS mm, the camera used in training, bone threshold, architecture parameters, training
statistics, the CT fingerprint, seed and software versions. Writing is atomic: files go
to a temporary sibling folder that is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from refusal import Refused
from registration.engine.unet import SceneCoordUNet, build_model

FORMAT_VERSION = 1
WEIGHTS_NAME = "weights.pt"
META_NAME = "model.json"


class ModelError(Refused):
    """A model directory is missing, incomplete or inconsistent."""


@dataclass
class LoadedModel:
    net: SceneCoordUNet
    meta: dict
    path: Path

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])

    @property
    def box_centre(self) -> np.ndarray:
        return np.asarray(self.meta["normalisation"]["centre_lps_mm"], dtype=np.float64)

    @property
    def box_scale(self) -> float:
        return float(self.meta["normalisation"]["scale_mm"])

    @property
    def bone_threshold_hu(self) -> float:
        return float(self.meta["bone_threshold_hu"])


def ct_fingerprint(array: np.ndarray, affine: np.ndarray) -> str:
    """Short stable hash of a CT (shape, affine rounded to 1e-4 mm, subsampled HU values)."""
    h = hashlib.sha256()
    arr = np.asarray(array)
    h.update(repr(tuple(arr.shape)).encode())
    h.update(np.round(np.asarray(affine, dtype=np.float64), 4).tobytes())
    sub = np.ascontiguousarray(arr[::3, ::3, ::3]).astype(np.float32)
    h.update(np.round(sub).astype(np.int32).tobytes())
    return h.hexdigest()[:24]


def versions() -> dict:
    import cv2

    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "format": FORMAT_VERSION,
    }


def save_model(out_dir: str | os.PathLike, net: SceneCoordUNet, meta: dict) -> Path:
    """Write ``weights.pt`` and ``model.json`` into ``out_dir`` atomically (replacing it)."""
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta.setdefault("format_version", FORMAT_VERSION)
    meta["architecture"] = net.config()
    meta["weights"] = WEIGHTS_NAME
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        torch.save(state, tmp / WEIGHTS_NAME)
        with open(tmp / META_NAME, "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=False)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model directory; raises :class:`ModelError` with a one-line reason."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"model directory not found: {path}")
    meta_path = path / META_NAME
    if not meta_path.is_file():
        raise ModelError(f"model directory {path} has no {META_NAME}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{meta_path} is not valid JSON: {exc}") from exc
    for key in ("input_size", "normalisation", "architecture", "bone_threshold_hu"):
        if key not in meta:
            raise ModelError(f"{meta_path} lacks the field {key!r}")
    weights = path / meta.get("weights", WEIGHTS_NAME)
    if not weights.is_file():
        raise ModelError(f"model directory {path} has no weights file {weights.name}")
    try:
        net = build_model(meta["architecture"])
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        raise ModelError(f"cannot load weights from {weights}: {str(exc).splitlines()[0]}") from exc
    net.to(device).eval()
    return LoadedModel(net=net, meta=meta, path=path)
