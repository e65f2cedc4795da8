"""Small U-Net that maps a line-integral X-ray to per-pixel scene coordinates.

Input: ``(B, 1, H, W)`` normalised line-integral image (see :func:`normalise_image`).
Output (:class:`SceneCoordOutput`), all per pixel of the input grid:

- ``coords``: ``(B, 6, H, W)`` entry (channels 0-2) and exit (3-5) bone-surface points
  in the model's *normalised* box frame (``(X_lps - centre) / half_extent``; see
  :mod:`registration.engine.dataset`).
- ``log_scale``: ``(B, 2, H, W)`` natural log of the Laplace scale of the entry and exit
  point errors, in normalised units (lower = more confident).
- ``bone_logit``: ``(B, 1, H, W)`` logit that the pixel's ray crosses bone.

H and W must be divisible by ``2 ** depth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LOG_SCALE_MIN = -7.0
LOG_SCALE_MAX = 2.0


@dataclass
class SceneCoordOutput:
    coords: torch.Tensor
    log_scale: torch.Tensor
    bone_logit: torch.Tensor


def _groups(ch: int) -> int:
    for g in (8, 4, 2):
        if ch % g == 0 and ch // g >= 2:
            return g
    return 1


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(cout), cout),
            nn.SiLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(cout), cout),
            nn.SiLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SceneCoordUNet(nn.Module):
    """U-Net with ``depth`` down/up levels and ``base`` channels at full resolution.

    Channel widths double per level up to ``max_channels``.
    """

    def __init__(self, base: int = 16, depth: int = 4, max_channels: int = 128) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.base = int(base)
        self.depth = int(depth)
        self.max_channels = int(max_channels)
        widths = [min(base * 2**i, max_channels) for i in range(depth + 1)]
        self.enc = nn.ModuleList()
        cin = 1
        for w in widths:
            self.enc.append(_Block(cin, w))
            cin = w
        self.pool = nn.AvgPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for lvl in range(depth - 1, -1, -1):
            self.up.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.dec.append(_Block(widths[lvl + 1] + widths[lvl], widths[lvl]))
        self.head = nn.Conv2d(widths[0], 9, 1)
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[6:8].fill_(-1.0)
            self.head.weight.mul_(0.1)

    def config(self) -> dict:
        """Architecture parameters, stored in model.json."""
        return {
            "name": "SceneCoordUNet",
            "base": self.base,
            "depth": self.depth,
            "max_channels": self.max_channels,
            "outputs": ["entry_xyz(3)", "exit_xyz(3)", "log_scale(2)", "bone_logit(1)"],
        }

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> SceneCoordOutput:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (B, 1, H, W) input, got {tuple(x.shape)}")
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(
                f"image size must be divisible by {self.multiple}, got {tuple(x.shape[-2:])}"
            )
        skips = []
        h = x
        for i, block in enumerate(self.enc):
            h = block(h)
            if i < self.depth:
                skips.append(h)
                h = self.pool(h)
        for up, dec in zip(self.up, self.dec, strict=True):
            h = up(h)
            h = dec(torch.cat([h, skips.pop()], dim=1))
        out = self.head(h)
        log_scale = out[:, 6:8].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
        return SceneCoordOutput(coords=out[:, :6], log_scale=log_scale, bone_logit=out[:, 8:9])


def build_model(config: dict) -> SceneCoordUNet:
    """Rebuild a network from :meth:`SceneCoordUNet.config` output."""
    if config.get("name", "SceneCoordUNet") != "SceneCoordUNet":
        raise ValueError(f"unknown architecture {config.get('name')!r}")
    return SceneCoordUNet(
        base=int(config.get("base", 16)),
        depth=int(config.get("depth", 4)),
        max_channels=int(config.get("max_channels", 128)),
    )


def normalise_image(
    line_integral: torch.Tensor, valid: torch.Tensor | None = None, eps: float = 1e-6
) -> torch.Tensor:
    """Per-image zero-mean / unit-std normalisation of ``(B, H, W)`` line integrals.

    Statistics are taken over ``valid`` pixels (e.g. inside the collimator); invalid
    pixels are set to 0. Returns ``(B, 1, H, W)``. Robust to the unknown gain/offset of
    a real X-ray's log conversion.
    """
    x = line_integral.float()
    if valid is None:
        valid = torch.ones_like(x, dtype=torch.bool)
    w = valid.float()
    n = w.sum(dim=(-2, -1), keepdim=True).clamp_min(1.0)
    mean = (x * w).sum(dim=(-2, -1), keepdim=True) / n
    var = (((x - mean) ** 2) * w).sum(dim=(-2, -1), keepdim=True) / n
    out = (x - mean) / (var.sqrt() + eps)
    out = out * w
    return out.unsqueeze(1)
