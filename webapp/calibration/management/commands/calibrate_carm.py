"""``manage.py calibrate_carm --image IMAGE --phantom PHANTOM.json --out profile.json
[--pixel-spacing SX SY] [--sdd MM]``: distortion model and effective source from one
phantom image, or the distortion alone from a dewarping grid plate (whose profile has a
nominal source ``(0, 0, -SDD)``: SDD from ``--sdd``, else the DICOM header's
DistanceSourceToDetector; with neither the calibration is refused, since an assumed SDD
would give the site a confidently wrong focal length)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from calibration.engine.calibrate import CalibrationError, calibrate
from calibration.engine.io import write_json_atomic
from calibration.engine.phantom import PhantomError, load_phantom
from webapp.calibration.management.commands import ImageReadError, read_image


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
        parser.add_argument(
            "--sdd",
            type=float,
            metavar="MM",
            help="source-to-detector distance in mm: the nominal source of a grid plate "
            "(overrides the DICOM header), the starting guess for a two-layer phantom",
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
        sdd = opts.get("sdd")
        if sdd is not None and not (sdd == sdd and 100 <= sdd <= 5000):
            raise CommandError(f"--sdd must be a distance between 100 and 5000 mm, got {sdd}")
        extra = {}
        if phantom.is_grid_plate:
            header_sdd = metadata.get("source_to_detector_mm")
            if sdd is not None:
                extra = {"sdd_mm": sdd, "sdd_origin": "--sdd"}
            elif header_sdd:
                extra = {
                    "sdd_mm": float(header_sdd),
                    "sdd_origin": "DICOM DistanceSourceToDetector",
                }
            else:
                raise CommandError(
                    "a grid plate gives no source distance and the image header has none: "
                    "pass --sdd MM (the C-arm's source-to-detector distance)"
                )
            extra["photometric"] = loaded.photometric
        elif sdd is not None:
            extra = {"nominal_sid_mm": sdd}
        try:
            result = calibrate(loaded.pixels, phantom, spacing, metadata=metadata, **extra)
        except CalibrationError as exc:
            raise CommandError(f"calibration refused: {exc}") from None
        try:
            write_json_atomic(out, result.profile)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc}") from None
        p = result.profile
        if p.get("source") == "nominal":
            lat = p["lattice"]
            self.stdout.write(
                f"wrote {out}: {p['beads_used']} plate markers on a {lat['kind']} lattice, order "
                f"{p['forward']['order']}, residual RMS {p['residuals_px']['rms']:.3f} px; nominal "
                f"source (0, 0, {p['source_mm'][2]:.1f}) mm, SDD from "
                f"{p['source_to_detector_origin']}"
            )
            return
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
