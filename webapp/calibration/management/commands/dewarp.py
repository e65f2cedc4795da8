"""``manage.py dewarp --image IMAGE --profile profile.json --out OUT.png``: remove the
image-intensifier distortion of an X-ray with a calibration profile (16-bit PNG out)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from calibration.engine.dewarp import ProfileError, check_profile, dewarp_image
from calibration.engine.io import write_png16_atomic
from webapp.calibration.management.commands import ImageReadError, read_image


class Command(BaseCommand):
    help = "Dewarp an X-ray (DICOM or PNG) with a calibration profile; writes a 16-bit PNG."

    def add_arguments(self, parser):
        parser.add_argument("--image", required=True)
        parser.add_argument("--profile", required=True, help="profile.json from calibrate_carm")
        parser.add_argument("--out", required=True, help="output PNG (16-bit)")

    def handle(self, *args, **opts):
        out = Path(opts["out"])
        if out.suffix.lower() != ".png":
            raise CommandError(f"--out must be a .png file, got {out.name}")
        if not out.parent.is_dir() and str(out.parent) not in ("", "."):
            raise CommandError(f"output folder does not exist: {out.parent}")
        try:
            profile = json.loads(Path(opts["profile"]).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandError(f"profile file not found: {opts['profile']}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(
                f"profile {Path(opts['profile']).name} is not valid JSON: {exc}"
            ) from None
        try:
            check_profile(profile)
            loaded = read_image(opts["image"])
            result = dewarp_image(loaded.pixels, profile)
        except (ProfileError, ImageReadError) as exc:
            raise CommandError(str(exc)) from None
        try:
            write_png16_atomic(out, result)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc}") from None
        self.stdout.write(f"wrote {out} ({result.shape[1]}x{result.shape[0]})")
