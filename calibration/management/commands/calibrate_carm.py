"""``manage.py calibrate_carm --image IMAGE --phantom PHANTOM.json --out profile.json
[--pixel-spacing SX SY]``: distortion model and effective source from one phantom image."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from calibration.engine.calibrate import CalibrationError, calibrate
from calibration.engine.io import write_json_atomic
from calibration.engine.phantom import PhantomError, load_phantom
from calibration.management.commands import ImageReadError, read_image


class Command(BaseCommand):
    help = "Calibrate a C-arm from one phantom image (DICOM, or PNG with --pixel-spacing)."

    def add_arguments(self, parser):
        parser.add_argument("--image", required=True, help="phantom X-ray: DICOM or 8/16-bit PNG")
        parser.add_argument("--phantom", required=True, help="phantom.json (CONVENTIONS.md)")
        parser.add_argument("--out", required=True, help="profile.json to write")
        parser.add_argument(
            "--pixel-spacing",
            nargs=2,
            type=float,
            metavar=("SX", "SY"),
            help="detector pixel spacing in mm (column, row); required for PNG",
        )

    def handle(self, *args, **opts):
        out = Path(opts["out"])
        if not out.parent.is_dir() and str(out.parent) not in ("", "."):
            raise CommandError(f"output folder does not exist: {out.parent}")
        try:
            phantom = load_phantom(opts["phantom"])
        except PhantomError as exc:
            raise CommandError(str(exc)) from None
        try:
            loaded = read_image(opts["image"])
        except ImageReadError as exc:
            raise CommandError(str(exc)) from None
        spacing = tuple(opts["pixel_spacing"]) if opts.get("pixel_spacing") else loaded.spacing
        if spacing is None:
            raise CommandError(
                f"{Path(opts['image']).name} has no pixel spacing: pass --pixel-spacing SX SY (mm)"
            )
        metadata = dict(loaded.metadata)
        metadata["image"] = Path(opts["image"]).name
        try:
            result = calibrate(loaded.pixels, phantom, spacing, metadata=metadata)
        except CalibrationError as exc:
            raise CommandError(f"calibration refused: {exc}") from None
        try:
            write_json_atomic(out, result.profile)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc}") from None
        p = result.profile
        src = p["source_mm"]
        src_txt = (
            f"source ({src[0]:.2f}, {src[1]:.2f}, {src[2]:.1f}) mm"
            if src
            else "no source (single-plane phantom)"
        )
        self.stdout.write(
            f"wrote {out}: {p['beads_used']} beads, order {p['forward']['order']}, "
            f"residual RMS {p['residuals_mm']['rms']:.3f} mm, {src_txt}"
        )
