"""Shared input handling of the registration commands (thin: parsing, errors, atomic writes)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from django.core.management.base import CommandError


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def check_device(device: str) -> str:
    if device == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda requested but no CUDA GPU is available")
    return device


def load_ct_or_fail(path: str):
    from dicomio import load_ct
    from dicomio.errors import InputRefused

    p = Path(path)
    if not p.exists():
        raise CommandError(f"CT not found: {path}")
    try:
        return load_ct(p)
    except InputRefused as exc:
        raise CommandError(f"cannot load the CT {p.name}: {one_line(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot load the CT {p.name}: {one_line(exc)}") from exc


def read_json_or_fail(path: str, what: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"{what} file not found: {path}")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"{what} file {p.name} is not valid JSON: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise CommandError(f"{what} file {p.name} must hold a JSON object")
    return data


def load_camera_or_fail(path: str):
    from geometry.camera import Camera

    data = read_json_or_fail(path, "camera")
    try:
        return Camera.from_json(data)
    except (ValueError, TypeError) as exc:
        raise CommandError(f"bad camera file {Path(path).name}: {one_line(exc)}") from exc


def load_pose_or_fail(path: str) -> np.ndarray:
    from geometry.rigid import validate_rigid

    data = read_json_or_fail(path, "pose")
    if "T_cam_from_world" not in data:
        raise CommandError(f"pose file {Path(path).name} lacks T_cam_from_world")
    try:
        return validate_rigid(data["T_cam_from_world"], "T_cam_from_world")
    except (ValueError, TypeError) as exc:
        raise CommandError(f"bad pose file {Path(path).name}: {one_line(exc)}") from exc


def write_json_atomic(path: str, data: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
