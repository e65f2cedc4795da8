"""The CT volume type shared by import, rendering and registration (no Django imports).

Frames follow docs/CONVENTIONS.md: ``array`` has shape (slices, rows, cols) =
(k, j, i) in HU; ``affine`` maps homogeneous voxel index (i, j, k, 1) to DICOM LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class CTVolume:
    array: np.ndarray
    affine: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise ValueError(
                f"CT array must be 3-D (slices, rows, cols), got shape {self.array.shape}"
            )
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if not np.all(np.isfinite(self.affine)):
            raise ValueError("affine contains NaN or infinite values")
        if abs(np.linalg.det(self.affine[:3, :3])) < 1e-9:
            raise ValueError("affine is singular (zero voxel size or degenerate directions)")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols) = (k, j, i)."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along i (columns), j (rows), k (slices)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def origin(self) -> np.ndarray:
        """LPS mm position of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit i, j, k axes in LPS."""
        return self.affine[:3, :3] / self.spacing

    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """(N, 3) voxel indices (i, j, k) -> (N, 3) LPS mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 3) fractional voxel indices (i, j, k)."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=np.float64)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def corners_world(self) -> np.ndarray:
        """(8, 3) LPS mm of the outer voxel-centre corners."""
        k, j, i = self.shape
        idx = np.array(
            [[a, b, c] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)], float
        )
        return self.voxel_to_world(idx)
