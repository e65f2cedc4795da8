"""Accuracy and speed benchmark of X-ray to CT registration on held-out simulated X-rays.

For each CT: train (or reuse) a model at the chosen preset, simulate held-out X-rays
(poses from a different random stream, a different noise/contrast setting than training,
including close-ups), and register each one three ways: network + PnP (no refinement),
network + PnP + intensity refinement, and intensity refinement alone from a rough start
(+-10 deg, +-30 mm). Prints a table and writes JSON. The runs live in
:mod:`registration.bench` (``in_dist_run``, ``ood_bench``); this command parses options,
finds the CTs and models, prints and writes.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registration.bench import ood_bench, ood_run
from registration.bench import report as ood_report
from registration.bench.bench_models import model_for
from registration.bench.in_dist_run import InDistSettings, run_in_distribution
from registration.bench.in_dist_table import table_lines
from webapp.xray_registration.management.commands._bench_cts import (
    DEFAULT_CT_DIR,
    bench_ct_name,
    bench_cts,
    load_bench_ct,
)
from webapp.xray_registration.management.commands._regio import (
    check_device,
    one_line,
    write_json_atomic,
)

# bench_self_check imports the CT helpers from here
__all__ = ["DEFAULT_CT_DIR", "Command", "bench_ct_name", "bench_cts", "load_bench_ct"]


class Command(BaseCommand):
    help = (
        "Benchmark registration accuracy (3D mTRE, projected distance) and speed on held-out "
        "simulated X-rays of the CTs in ../shared/data/ct (or --ct). Trains a model per CT at "
        "--preset unless one for that CT is already in --models. Prints a table and writes JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ct", action="append", help="CT path (repeatable); default: shared data")
        parser.add_argument("--preset", default="quick", choices=["quick", "standard", "full"])
        parser.add_argument("--train-minutes", type=float, default=None,
                            help="train for this long instead of the preset's time budget "
                                 "(same network and data; steps bounded by the clock alone); "
                                 "the model is cached apart from the preset's")
        parser.add_argument("--n-images", type=int, default=None,
                            help="shots per CT (default 20 in distribution, 60 out of it)")
        parser.add_argument("--heldout", default="in", choices=["in", "ood", "both"],
                            help="in: held-out shots of our own simulator (today's benchmark); "
                                 "ood: shots rendered by nanodrr with another X-ray chain, stored "
                                 "as PNG/DICOM files and registered through register_xray's path; "
                                 "both: the two, side by side")
        parser.add_argument("--ood-modes", default="model,init_3_5,init_8_20",
                            help="OOD starts, comma-separated: model (the trained network, with "
                                 "the header start on DICOM shots), init_3_5 / init_8_20 (true "
                                 "pose perturbed by 3 deg/5 mm or 8 deg/20 mm, no network), "
                                 "training_free")
        parser.add_argument("--training-free", action="store_true",
                            help="add the training-free mode (no network) to --ood-modes")
        parser.add_argument("--shots-dir", default="bench_out/ood_shots",
                            help="where the OOD shots are written (reused for the same seed)")
        parser.add_argument("--json", default="bench_out/bench_registration.json")
        parser.add_argument("--models", default="bench_out/models", help="folder of cached models")
        parser.add_argument("--seed", type=int, default=1000)
        parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        parser.add_argument("--closeup-share", type=float, default=0.3)
        parser.add_argument("--skip-refine-only", action="store_true")
        parser.add_argument("--network-only", action="store_true",
                            help="network + PnP alone (no search, refinement or refine-only "
                                 "run): a quick comparison of models")
        parser.add_argument("--restarts", type=int, default=None,
                            help="self-check re-refinements per result (default: the pipeline's)")
        parser.add_argument("--frozen-depth", action="store_true",
                            help="refine 5 DoF, keeping the depth of the start pose")
        parser.add_argument("--no-header-start", action="store_true",
                            help="do not give the full pipeline the header-angle start pose "
                                 "(the site gives it whenever the X-ray header has the angles)")
        parser.add_argument("--no-search", action="store_true",
                            help="skip the coarse pose search before refinement")
        parser.add_argument("--fixed-dose", action="store_true",
                            help="draw the tube output (4e3-6e4 photons per pixel, unattenuated) "
                                 "regardless of the patient instead of automatic exposure control "
                                 "(a set point of 1e3-1e4 photons at the centre, tube limit 2.5e5)")
        parser.add_argument("--no-profile-search", action="store_true",
                            help="skip the depth profile search (for comparison)")
        parser.add_argument("--no-pnp-polish", action="store_true",
                            help="skip the weighted LM of the PnP pose on every bone "
                                 "correspondence (RegistrationOptions.pnp_polish; for comparison)")
        parser.add_argument("--box-pivot", action="store_true",
                            help="turn about the bone-box centre instead of the view's centre")

    def handle(self, *args, **opts):
        device = check_device(opts["device"])
        modes = self._checked(opts)
        report: dict = {}
        if opts["heldout"] in ("in", "both"):
            report = self._in_distribution(bench_cts(opts["ct"]), opts, device)
        if opts["heldout"] in ("ood", "both"):
            report["heldout"] = opts["heldout"]
            report["ood"] = self._ood(opts, device, modes)
        write_json_atomic(opts["json"], report)
        lines = table_lines(report) if "cts" in report else []
        if "ood" in report:
            lines += ["", "OUT OF DISTRIBUTION (nanodrr shots, PNG/DICOM files, register_xray's path)"]
            lines += ood_report.table_lines(report["ood"]["report"])
        if "ood" in report and "cts" in report:
            lines += ["", "side by side (all CTs)"]
            lines += ood_report.side_by_side(report["pooled"].get("refine", {}),
                                             report["ood"]["report"])
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"wrote {opts['json']}")

    @staticmethod
    def _checked(opts) -> list[str]:
        """Refuse bad numbers before any work; the OOD modes asked for."""
        if opts["restarts"] is not None and opts["restarts"] < 0:
            raise CommandError("--restarts must be >= 0")
        if opts["train_minutes"] is not None and not 0 < opts["train_minutes"] <= 24 * 60:
            raise CommandError("--train-minutes must be in (0, 1440]")
        if opts["n_images"] is not None and opts["n_images"] < 1:
            raise CommandError("--n-images must be >= 1")
        modes = [m.strip() for m in opts["ood_modes"].split(",") if m.strip()]
        if opts["training_free"] and "training_free" not in modes:
            modes.append("training_free")
        bad = [m for m in modes if m not in ood_run.MODES]
        if bad or not modes:
            raise CommandError(f"unknown --ood-modes {', '.join(bad) or '(none)'}; "
                               f"choose from {', '.join(ood_run.MODES)}")
        return modes

    def _ood(self, opts, device: str, modes: list[str]) -> dict:
        """The OOD benchmark's JSON part (registration.bench.ood_bench)."""
        from dicomio.errors import InputRefused

        if opts["ct"]:
            paths = bench_cts(opts["ct"])
        else:
            paths = ood_bench.default_ood_cts(DEFAULT_CT_DIR.parent)
            if not paths:
                raise CommandError("no CT given and ../shared/data not found: pass --ct PATH")
        cts = []
        for p in paths:
            cts.append((bench_ct_name(p), load_bench_ct(p), p))
        n = opts["n_images"] or 60
        try:
            return ood_bench.run_ood(
                cts, modes, n=n, seed=opts["seed"], shots_dir=Path(opts["shots_dir"]),
                device=device, log=self.stdout.write,
                get_model=lambda path, vol: self._model_for(path, vol, opts, device)[0])
        except ood_run.ModeUnavailable as exc:
            raise CommandError(one_line(exc)) from exc
        except (InputRefused, OSError) as exc:
            raise CommandError(f"OOD benchmark: {one_line(exc)}") from exc

    def _in_distribution(self, cts: list[Path], opts, device: str) -> dict:
        """Today's benchmark: held-out shots of our own simulator (table + JSON fields)."""
        st = InDistSettings.from_options(opts)
        report = run_in_distribution(
            cts, st, device, name_of=bench_ct_name, load=load_bench_ct,
            get_model=lambda path, vol: self._model_for(path, vol, opts, device),
            log=self.stdout.write)
        return {"preset": opts["preset"], "train_minutes": opts["train_minutes"], **report}

    def _model_for(self, ct_path: Path, volume, opts, device: str):
        """(loaded model, training info) for the CT: the cached one in --models when it
        was trained on this CT and camera, else one trained now at --preset and cached."""
        from webapp.env import training_overrides

        return model_for(bench_ct_name(ct_path), volume, preset_name=opts["preset"],
                         train_minutes=opts["train_minutes"], models_dir=Path(opts["models"]),
                         device=device, overrides=training_overrides(), log=self.stdout.write)
