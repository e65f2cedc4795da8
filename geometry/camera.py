"""The one C-arm pinhole camera model of the project (no Django imports).

Conventions (docs/CONVENTIONS.md, "C-arm camera model"):

* The X-ray source is the camera centre. Camera axes: +x along image columns,
  +y along image rows (down), +z from the source toward the detector.
* ``K = [[f/sx, 0, cx], [0, f/sy, cy], [0, 0, 1]]`` in pixels, ``f`` the
  source-to-detector distance in mm, ``(sx, sy)`` the detector pixel spacing in mm
  (columns, rows) and ``(cx, cy)`` the principal point in pixels.
* Pixel ``(u, v)``: u = column, v = row; the centre of the top-left pixel is (0, 0).
* A pose is ``T_cam_from_world`` (4x4, world = DICOM LPS mm, camera mm).

``project``, ``backproject`` and ``pixel_rays`` accept NumPy arrays or torch tensors
(all inputs of one call of the same kind) and return the same kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _as_matrix(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of shape {shape}") from exc
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    ivalue = int(value)
    if ivalue <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return ivalue


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    try:
        fvalue = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a positive number, got {value!r}") from exc
    if not math.isfinite(fvalue) or fvalue <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return fvalue


@dataclass(frozen=True, eq=False)
class Camera:
    """Intrinsics of a (dewarped) C-arm image.

    Attributes:
        width, height: image size in pixels.
        K: (3, 3) intrinsic matrix in pixels (float64).
        pixel_spacing_mm: detector pixel spacing ``(sx, sy)`` in mm (columns, rows).
        source_to_detector_mm: source-to-detector distance ``f`` in mm.
    """

    width: int
    height: int
    K: np.ndarray = field(repr=False)
    pixel_spacing_mm: tuple[float, float]
    source_to_detector_mm: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", _positive_int(self.width, "width"))
        object.__setattr__(self, "height", _positive_int(self.height, "height"))
        K = _as_matrix(self.K, (3, 3), "K")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError("K focal lengths K[0][0] and K[1][1] must be positive")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or abs(K[1, 0]) > 1e-9:
            raise ValueError("K must be upper triangular with last row [0, 0, 1]")
        K = K.copy()
        object.__setattr__(self, "K", K)
        try:
            sx, sy = self.pixel_spacing_mm
        except (TypeError, ValueError) as exc:
            raise ValueError("pixel_spacing_mm must be two numbers [sx, sy]") from exc
        object.__setattr__(
            self,
            "pixel_spacing_mm",
            (_positive_float(sx, "pixel spacing sx"), _positive_float(sy, "pixel spacing sy")),
        )
        object.__setattr__(
            self,
            "source_to_detector_mm",
            _positive_float(self.source_to_detector_mm, "source_to_detector_mm"),
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_geometry(
        cls,
        width: int,
        height: int,
        source_to_detector_mm: float,
        sx: float,
        sy: float,
        cx: float | None = None,
        cy: float | None = None,
    ) -> Camera:
        """Camera from the source-to-detector distance (mm), pixel spacing (mm) and
        principal point (pixels; default the image centre ``((W-1)/2, (H-1)/2)``)."""
        width = _positive_int(width, "width")
        height = _positive_int(height, "height")
        f = _positive_float(source_to_detector_mm, "source_to_detector_mm")
        sx = _positive_float(sx, "pixel spacing sx")
        sy = _positive_float(sy, "pixel spacing sy")
        cx = (width - 1) / 2.0 if cx is None else float(cx)
        cy = (height - 1) / 2.0 if cy is None else float(cy)
        K = np.array([[f / sx, 0.0, cx], [0.0, f / sy, cy], [0.0, 0.0, 1.0]])
        return cls(width, height, K, (sx, sy), f)

    @classmethod
    def from_source(
        cls, source_mm: Any, width: int, height: int, spacing: tuple[float, float]
    ) -> Camera:
        """Camera of a detector ``width x height`` pixels of ``spacing`` (sx, sy) mm whose
        effective source sits at ``source_mm`` = (Sx, Sy, -f) in the detector frame
        (docs/CONVENTIONS.md): ``cx = (W-1)/2 + Sx/sx``, ``cy = (H-1)/2 + Sy/sy``."""
        source = _as_matrix(source_mm, (3,), "source_mm")
        if source[2] >= 0:
            raise ValueError("the source must lie before the detector (source_mm z < 0)")
        sx = _positive_float(spacing[0], "pixel spacing sx")
        sy = _positive_float(spacing[1], "pixel spacing sy")
        width = _positive_int(width, "width")
        height = _positive_int(height, "height")
        return cls.from_geometry(
            width, height, -float(source[2]), sx, sy,
            (width - 1) / 2.0 + source[0] / sx, (height - 1) / 2.0 + source[1] / sy,
        )

    @classmethod
    def from_json(cls, data: dict) -> Camera:
        """Camera from the ``camera.json`` dictionary
        ``{"width", "height", "K", "pixel_spacing_mm", "source_to_detector_mm"}``."""
        if not isinstance(data, dict):
            raise ValueError(
                "camera JSON must be an object with width, height, K, "
                "pixel_spacing_mm and source_to_detector_mm"
            )
        missing = [
            key
            for key in ("width", "height", "K", "pixel_spacing_mm", "source_to_detector_mm")
            if key not in data
        ]
        if missing:
            raise ValueError(f"camera JSON is missing field(s): {', '.join(missing)}")
        spacing = data["pixel_spacing_mm"]
        if not isinstance(spacing, (list, tuple)) or len(spacing) != 2:
            raise ValueError("camera JSON pixel_spacing_mm must be a list [sx, sy]")
        return cls(
            width=data["width"],
            height=data["height"],
            K=_as_matrix(data["K"], (3, 3), "camera JSON K"),
            pixel_spacing_mm=(spacing[0], spacing[1]),
            source_to_detector_mm=data["source_to_detector_mm"],
        )

    def to_json(self) -> dict:
        """The ``camera.json`` dictionary (plain Python types)."""
        return {
            "width": int(self.width),
            "height": int(self.height),
            "K": [[float(x) for x in row] for row in self.K],
            "pixel_spacing_mm": [float(self.pixel_spacing_mm[0]), float(self.pixel_spacing_mm[1])],
            "source_to_detector_mm": float(self.source_to_detector_mm),
        }

    @classmethod
    def from_profile(cls, profile: dict) -> Camera:
        """Camera from a calibration ``profile.json`` (fields ``K``, ``width``, ``height``,
        ``pixel_spacing_mm``; ``source_to_detector_mm`` is taken from the profile when
        present, else from ``-source_mm[2]``, else ``K[0][0] * sx``)."""
        if not isinstance(profile, dict):
            raise ValueError("calibration profile must be a JSON object")
        missing = [k for k in ("K", "width", "height", "pixel_spacing_mm") if k not in profile]
        if missing:
            raise ValueError(f"calibration profile is missing field(s): {', '.join(missing)}")
        K = _as_matrix(profile["K"], (3, 3), "profile K")
        spacing = profile["pixel_spacing_mm"]
        if not isinstance(spacing, (list, tuple)) or len(spacing) != 2:
            raise ValueError("profile pixel_spacing_mm must be a list [sx, sy]")
        sx = _positive_float(spacing[0], "profile pixel spacing sx")
        if "source_to_detector_mm" in profile:
            f = profile["source_to_detector_mm"]
        elif profile.get("source_mm") is not None:
            source = _as_matrix(profile["source_mm"], (3,), "profile source_mm")
            f = -source[2]
        else:
            f = K[0, 0] * sx
        return cls(profile["width"], profile["height"], K, (spacing[0], spacing[1]), f)

    # ------------------------------------------------------------------ derived
    def window(
        self, u0: float, v0: float, side_u: float, side_v: float, width: int, height: int
    ) -> Camera:
        """Camera of a detector window resampled to ``width x height`` pixels.

        The window's top-left pixel *edge* is at ``(u0, v0)`` in this image's pixel units,
        where ``(0, 0)`` is the image's own top-left corner (the edge of pixel ``(0, 0)``,
        whose centre is ``(0, 0)`` in ``(u, v)``); it spans ``side_u x side_v`` pixels and
        may reach beyond the image. A pixel ``u`` of this image maps to
        ``(u + 0.5 - u0) * width / side_u - 0.5`` (rows alike), so focal lengths scale by
        ``width / side_u`` and the pixel spacing by its inverse.
        """
        width = _positive_int(width, "width")
        height = _positive_int(height, "height")
        au = width / _positive_float(side_u, "window width")
        av = height / _positive_float(side_v, "window height")
        K = window_K(self.K, u0, v0, au, av)
        sx, sy = self.pixel_spacing_mm
        return Camera(width, height, K, (sx / au, sy / av), self.source_to_detector_mm)

    def scaled(self, width: int, height: int) -> Camera:
        """The same detector resampled to ``width x height`` pixels (a :meth:`window` over
        the whole image): ``fx' = fx W'/W``, ``cx' = (cx + 0.5) W'/W - 0.5``, rows alike."""
        return self.window(0.0, 0.0, self.width, self.height, width, height)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> Camera:
        """The window ``[x0, x0 + width) x [y0, y0 + height)`` of this image (a close-up):
        same focal lengths and spacing, principal point shifted by ``(-x0, -y0)``."""
        x0, y0 = int(x0), int(y0)
        width = _positive_int(width, "width")
        height = _positive_int(height, "height")
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise ValueError(
                f"window {width}x{height} at ({x0}, {y0}) lies outside the "
                f"{self.width}x{self.height} image"
            )
        return self.window(x0, y0, width, height, width, height)

    def K_tensor(self, dtype: torch.dtype = torch.float32, device: Any = "cpu") -> torch.Tensor:
        """``K`` as a torch tensor."""
        return torch.as_tensor(np.array(self.K), dtype=dtype, device=device)


# ---------------------------------------------------------------- intrinsics alone
def window_K(K: Array, u0: float, v0: float, scale_u: float, scale_v: float) -> np.ndarray:
    """Intrinsics of a window whose top-left pixel edge is at ``(u0, v0)`` of the image of
    ``K``, resampled by ``scale_u`` / ``scale_v`` (new pixels per old pixel): a pixel ``u``
    maps to ``(u + 0.5 - u0) * scale_u - 0.5`` (rows alike). The one rule for cropping and
    rescaling K (:meth:`Camera.window`, :meth:`Camera.scaled`, :func:`downsampled_K`)."""
    out = np.array(K, dtype=np.float64).copy()
    out[0, 0] *= scale_u
    out[0, 1] *= scale_u
    out[0, 2] = (out[0, 2] + 0.5 - float(u0)) * scale_u - 0.5
    out[1, 1] *= scale_v
    out[1, 2] = (out[1, 2] + 0.5 - float(v0)) * scale_v - 0.5
    return out


def downsampled_K(K: Array, factor: float) -> np.ndarray:
    """Intrinsics of the whole image downsampled by ``factor`` (old pixels per new pixel;
    pixel centres at integers): :func:`window_K` with no offset and scale ``1 / factor``."""
    scale = 1.0 / _positive_float(factor, "downsampling factor")
    return window_K(K, 0.0, 0.0, scale, scale)


# ---------------------------------------------------------------------- projection
def _is_torch(*values: Any) -> bool:
    return any(isinstance(v, torch.Tensor) for v in values)


def project(points_world: Array, K: Array, T_cam_from_world: Array) -> Array:
    """Project (N, 3) LPS mm points to (N, 2) pixel coordinates ``(u, v)``.

    ``x_cam = R X + t``; ``(u, v) = (K x_cam)[:2] / (K x_cam)[2]``. Points behind the
    source (z <= 0) give non-finite or meaningless values; check depth separately.
    Works with NumPy arrays or torch tensors (differentiable).
    """
    if _is_torch(points_world, K, T_cam_from_world):
        ref = next(v for v in (points_world, K, T_cam_from_world) if isinstance(v, torch.Tensor))
        X = torch.as_tensor(points_world, dtype=ref.dtype, device=ref.device)
        Kt = torch.as_tensor(K, dtype=ref.dtype, device=ref.device)
        T = torch.as_tensor(T_cam_from_world, dtype=ref.dtype, device=ref.device)
        x_cam = X @ T[:3, :3].T + T[:3, 3]
        h = x_cam @ Kt.T
        return h[:, :2] / h[:, 2:3]
    X = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    Kn = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_cam_from_world, dtype=np.float64)
    x_cam = X @ T[:3, :3].T + T[:3, 3]
    h = x_cam @ Kn.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[:, :2] / h[:, 2:3]


def backproject(uv: Array, depth_mm: Array | float, K: Array, T_cam_from_world: Array) -> Array:
    """Pixel coordinates (N, 2) and camera depth ``z`` in mm (scalar or (N,)) -> (N, 3)
    LPS mm. Inverse of :func:`project` for points at that depth."""
    if _is_torch(uv, depth_mm, K, T_cam_from_world):
        ref = next(v for v in (uv, depth_mm, K, T_cam_from_world) if isinstance(v, torch.Tensor))
        uvt = torch.as_tensor(uv, dtype=ref.dtype, device=ref.device).reshape(-1, 2)
        z = torch.as_tensor(depth_mm, dtype=ref.dtype, device=ref.device).reshape(-1, 1)
        Kt = torch.as_tensor(K, dtype=ref.dtype, device=ref.device)
        T = torch.as_tensor(T_cam_from_world, dtype=ref.dtype, device=ref.device)
        ones = torch.ones_like(uvt[:, :1])
        rays = torch.cat([uvt, ones], dim=1) @ torch.linalg.inv(Kt).T
        x_cam = rays * z
        R = T[:3, :3]
        return (x_cam - T[:3, 3]) @ R
    uvn = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(depth_mm, dtype=np.float64).reshape(-1, 1)
    Kn = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_cam_from_world, dtype=np.float64)
    rays = np.concatenate([uvn, np.ones_like(uvn[:, :1])], axis=1) @ np.linalg.inv(Kn).T
    x_cam = rays * z
    return (x_cam - T[:3, 3]) @ T[:3, :3]


def source_position(T_cam_from_world: Array) -> Array:
    """X-ray source (camera centre) in LPS mm: ``-R^T t``."""
    if isinstance(T_cam_from_world, torch.Tensor):
        R = T_cam_from_world[..., :3, :3]
        t = T_cam_from_world[..., :3, 3]
        return -(R.transpose(-1, -2) @ t.unsqueeze(-1)).squeeze(-1)
    T = np.asarray(T_cam_from_world, dtype=np.float64)
    return -T[:3, :3].T @ T[:3, 3]


def pixel_rays(camera: Camera, T_cam_from_world: Array) -> tuple[Array, Array]:
    """Rays through every pixel centre.

    Returns ``(source_world (3,), directions_world (H, W, 3))`` with unit directions in
    LPS pointing from the source toward the detector. NumPy in, NumPy out; a torch pose
    gives torch tensors (differentiable).
    """
    H, W = camera.height, camera.width
    if isinstance(T_cam_from_world, torch.Tensor):
        T = T_cam_from_world
        Kinv = torch.linalg.inv(camera.K_tensor(T.dtype, T.device))
        v, u = torch.meshgrid(
            torch.arange(H, dtype=T.dtype, device=T.device),
            torch.arange(W, dtype=T.dtype, device=T.device),
            indexing="ij",
        )
        pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)
        d_cam = pix @ Kinv.T
        d_world = d_cam @ T[:3, :3]
        d_world = d_world / torch.linalg.norm(d_world, dim=-1, keepdim=True)
        return source_position(T), d_world
    T = np.asarray(T_cam_from_world, dtype=np.float64)
    Kinv = np.linalg.inv(camera.K)
    v, u = np.meshgrid(
        np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij"
    )
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    d_world = (pix @ Kinv.T) @ T[:3, :3]
    d_world /= np.linalg.norm(d_world, axis=-1, keepdims=True)
    return source_position(T), d_world
