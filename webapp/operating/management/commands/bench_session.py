"""End-to-end latency of the intra-operative session: C-STORE of a shot to its overlay.

    python manage.py bench_session [--shots 20] [--json PATH] [--worker process|none]

Opens a session for the bench patient (tiny synthetic bone CT, no trained model: every
registration is training-free), starts a DICOM listener on a free loopback port and a
Celery worker as scripts/serve.py does (``--worker none``: the running workers), sends the
shots one after another by C-STORE, and for each times the moment the session feed the
page polls reports the overlay (and the overlay PNG is fetched). Prints a table (median,
p95, max, failures) and writes JSON with ``--json``. Uses the configured database, media
folder and broker (see webapp/operating/bench.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from refusal import Refused


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--shots", type=int, default=20, help="shots to send (1-200)")
        parser.add_argument("--json", default="", help="write the results here as JSON")
        parser.add_argument("--worker", choices=["process", "none"], default="process",
                            help="start a worker process (default) or use the running ones")
        parser.add_argument("--timeout-s", type=float, default=300.0,
                            help="give up on a shot after this many seconds")
        parser.add_argument("--poll-s", type=float, default=0.1,
                            help="seconds between two reads of the session feed")
        parser.add_argument("--seed", type=int, default=0, help="seed of the C-arm angles")

    def handle(self, *args, **opts) -> None:
        from webapp.operating.bench import HEADER, format_table, run_bench

        if not 1 <= opts["shots"] <= 200:
            raise CommandError("--shots must be from 1 to 200")
        if not 1.0 <= opts["timeout_s"] <= 3600.0 or not 0.01 <= opts["poll_s"] <= 5.0:
            raise CommandError("--timeout-s must be 1-3600 and --poll-s 0.01-5")
        out = Path(opts["json"]) if opts["json"] else None
        if out is not None and not out.parent.is_dir():
            raise CommandError(f"--json: the folder {out.parent} does not exist")
        live = opts["verbosity"] > 1  # -v 2: each shot as it ends
        if live:
            self.stdout.write(HEADER)
        try:
            result = run_bench(
                shots=opts["shots"], timeout_s=opts["timeout_s"], poll_s=opts["poll_s"],
                worker=opts["worker"], seed=opts["seed"],
                report=self.stdout.write if live else (lambda _line: None),
            )
        except Refused as exc:
            raise CommandError(f"bench_session: {exc}") from None
        self.stdout.write(format_table(result))
        if out is not None:
            tmp = out.with_name(out.name + ".part")
            tmp.write_text(json.dumps(result, indent=1))
            os.replace(tmp, out)
            self.stdout.write(f"wrote {out}")
