"""``manage.py bench_calibration [--cases 20] [--plate-cases N] [--layout-cases N] [--json bench_out/bench_calibration.json]``

Accuracy and speed of the C-arm calibration engine on simulated image-intensifier phantom
images (random source, random distortion 5-10 mm at the edge, 0.1 px extra detection
noise). Prints a table (mean / 95th percentile / max per metric, with the goal) and
writes the numbers as JSON. Beside it, the dewarping-plate family
(:func:`calibration.bench.plates.plate_case`: realistic plate frames, the dewarped
image's markers against a perfect lattice in the central 80 % of the field; JSON key
``plate``) and the random-layout family (:func:`calibration.bench.layouts.layout_case`:
two-layer phantoms the identification has never seen, frames with 0 or 30 % hidden, with
and without anatomy; JSON key ``layouts``). The measurements live in
:mod:`calibration.bench.run`; this command only parses options, prints and writes.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError

from calibration.bench.report import table_lines
from calibration.bench.run import BenchRefused, BenchSettings, run_bench
from calibration.engine.io import write_json_atomic


class Command(BaseCommand):
    help = "Benchmark C-arm calibration accuracy and speed on simulated phantom images."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=20)
        parser.add_argument("--json", default="bench_out/bench_calibration.json")
        parser.add_argument("--size", type=int, default=1024, help="image size in pixels")
        parser.add_argument("--seed", type=int, default=1000)
        parser.add_argument("--noise-px", type=float, default=0.1, help="extra detection noise")
        parser.add_argument(
            "--plate-cases",
            type=int,
            default=None,
            help="dewarping-plate frames (default: half of --cases, at least 2; 0 skips)",
        )
        parser.add_argument(
            "--layout-cases",
            type=int,
            default=None,
            help="random two-layer layouts, one frame each (default: twice --cases; 0 skips)",
        )

    def handle(self, *args, **opts):
        n_cases = int(opts["cases"])
        if n_cases < 2:
            raise CommandError("--cases must be at least 2")
        size = int(opts["size"])
        if size < 256:
            raise CommandError("--size must be at least 256")
        out_path = Path(opts["json"])
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create {out_path.parent}: {exc}") from None
        n_plate, n_layout = opts.get("plate_cases"), opts.get("layout_cases")
        settings = BenchSettings(
            cases=n_cases,
            size=size,
            seed=int(opts["seed"]),
            noise_px=opts["noise_px"],
            plate_cases=max(2, n_cases // 2) if n_plate is None else int(n_plate),
            layout_cases=2 * n_cases if n_layout is None else int(n_layout),
            ct_dir=Path(django_settings.ORTHOFUSE_SHARED_DATA) / "ct",
        )
        try:
            summary = run_bench(settings, self.stdout.write)
        except BenchRefused as exc:
            raise CommandError(str(exc)) from None
        for line in table_lines(summary):
            self.stdout.write(line)
        try:
            write_json_atomic(out_path, summary)
        except OSError as exc:
            raise CommandError(f"cannot write {out_path}: {exc}") from None
        self.stdout.write(f"wrote {out_path}")
