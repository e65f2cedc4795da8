"""``manage.py bench_import_bombs [--json PATH] [--only NAME]...``

Builds every 1-2 MB decompression bomb of :data:`webapp.records.bomb_check.BOMBS` (NIfTI
declaring 2^30 voxels, gzip inflate ratio, 32768^2 PNG, huge DICOM X-ray and CT, forged
DICOM, deflated DICOM, zip bombs), imports each in a fresh process through the importers the
cpu import jobs call, and prints a table: bomb, size, refused?, peak RSS rise (VmHWM reset
before the import), tracemalloc peak, seconds, the job's message. ``--json`` writes the rows.
Exits non-zero when a bomb is not refused or its peak RSS rise reaches 500 MB.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from webapp.records.bomb_check import BOMBS, MIB, PEAK_LIMIT_BYTES, format_table, run_bench


class Command(BaseCommand):
    help = "Import every decompression bomb in a fresh process and report refusal and peak memory."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", dest="json_path", default=None, help="write the rows here")
        parser.add_argument(
            "--only",
            action="append",
            choices=[item.name for item in BOMBS],
            help="run only this bomb (repeatable)",
        )

    def handle(self, *args, **options) -> None:
        rows = run_bench(options["only"])
        self.stdout.write(format_table(rows))
        peaks = [row["peak_rss_mib"] for row in rows if row["peak_rss_mib"] is not None]
        refused = sum(1 for row in rows if row["refused"])
        self.stdout.write(
            f"{refused} of {len(rows)} bombs refused; largest peak RSS rise "
            f"{max(peaks, default=0.0):.1f} MiB (limit {PEAK_LIMIT_BYTES / MIB:.0f} MiB)"
        )
        if options["json_path"]:
            report = {"peak_limit_mib": PEAK_LIMIT_BYTES / MIB, "bombs": rows}
            Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
            self.stdout.write(f"wrote {options['json_path']}")
        failed = [row["bomb"] for row in rows if not row["ok"]]
        if failed:
            raise CommandError(
                f"not refused within {PEAK_LIMIT_BYTES / MIB:.0f} MiB: {', '.join(failed)}"
            )
