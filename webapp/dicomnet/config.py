"""The DICOM node's settings, read once from Django settings (``ORTHOFUSE_DICOM_*``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

MULTIFRAME_MODES = ("last", "all")


@dataclass(frozen=True)
class NodeConfig:
    """Everything the listener needs. ``quiet_s`` in seconds; ``port`` 0 picks a free port."""

    ae_title: str = "ORTHOFUSE"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_calling_ae: tuple[str, ...] = field(default_factory=tuple)
    care_team: str = "DICOM inbox"
    quiet_s: float = 10.0
    multiframe: str = "last"
    staging_dir: Path = Path("dicom-staging")

    def __post_init__(self) -> None:
        title = self.ae_title.strip()
        if not title or len(title) > 16 or not title.isascii() or "\\" in title:
            raise ValueError(f"AE title {self.ae_title!r} must be 1 to 16 ASCII characters")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port {self.port} is not between 0 and 65535")
        for calling in self.allowed_calling_ae:
            if len(calling) > 16 or not calling.isascii() or "\\" in calling:
                raise ValueError(
                    f"ORTHOFUSE_DICOM_ALLOWED_CALLING_AE: {calling!r} is not an AE title "
                    "(1 to 16 ASCII characters)"
                )
        if self.multiframe not in MULTIFRAME_MODES:
            raise ValueError(
                f"ORTHOFUSE_DICOM_MULTIFRAME={self.multiframe!r}: expected 'last' or 'all'"
            )
        if not self.quiet_s > 0:
            raise ValueError(f"ORTHOFUSE_DICOM_QUIET_S={self.quiet_s} must be above 0 seconds")
        if not self.care_team.strip():
            raise ValueError("ORTHOFUSE_DICOM_CARE_TEAM must name a care team")


def node_config(**overrides) -> NodeConfig:
    """The configuration from Django settings, with ``overrides`` (e.g. ``port=0``) applied."""
    values = {
        "ae_title": str(getattr(settings, "ORTHOFUSE_DICOM_AE_TITLE", "ORTHOFUSE")),
        "host": str(getattr(settings, "ORTHOFUSE_DICOM_HOST", "127.0.0.1")),
        "port": int(getattr(settings, "ORTHOFUSE_DICOM_PORT", 11112)),
        "allowed_calling_ae": tuple(getattr(settings, "ORTHOFUSE_DICOM_ALLOWED_CALLING_AE", [])),
        "care_team": str(getattr(settings, "ORTHOFUSE_DICOM_CARE_TEAM", "DICOM inbox")),
        "quiet_s": float(getattr(settings, "ORTHOFUSE_DICOM_QUIET_S", 10.0)),
        "multiframe": str(getattr(settings, "ORTHOFUSE_DICOM_MULTIFRAME", "last")).lower(),
        "staging_dir": Path(
            getattr(settings, "ORTHOFUSE_DICOM_STAGING_DIR", None)
            or Path(settings.VAR_DIR) / "dicom-staging"
        ),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["allowed_calling_ae"] = tuple(s.strip() for s in values["allowed_calling_ae"] if s.strip())
    return NodeConfig(**values)
