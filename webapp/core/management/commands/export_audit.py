"""Export the audit trail as CSV or DICOM audit messages (PS3.15 A.5); the export is audited.

Usage: ``python manage.py export_audit --format csv|dicom [--since ISO] [--until ISO]
[--output PATH]`` (without ``--output`` the export goes to standard output; a date alone as
``--until`` includes that whole day; naive times are in the site's time zone).
"""

from __future__ import annotations

import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from webapp.core.audit_export import FORMATS, ExportRefused, iter_export, parse_bound, start_export


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


class Command(BaseCommand):
    help = "Export the audit trail (CSV, or DICOM PS3.15 A.5 audit messages as XML)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or dicom")
        parser.add_argument("--since", help="first time included (ISO 8601 date or date-time)")
        parser.add_argument("--until", help="end of the period, excluded (a date: through that day)")
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args, **options) -> None:
        fmt = options["format"]
        try:
            since = parse_bound(options["since"])
            until = parse_bound(options["until"], upper=True)
            target = Path(options["output"]) if options["output"] else None
            if target is not None and not target.parent.is_dir():
                raise ExportRefused(f"cannot write {target}: folder {target.parent} does not exist")
            events, count = start_export(
                None, fmt, since, until,
                via=f"manage.py export_audit by OS user {_os_user()}",
            )
        except ExportRefused as exc:
            raise CommandError(str(exc)) from exc
        if target is None:
            for chunk in iter_export(fmt, events):
                self.stdout.write(chunk, ending="")
            self.stdout.flush()
            return
        with target.open("w", encoding="utf-8", newline="") as out:
            for chunk in iter_export(fmt, events):
                out.write(chunk)
        self.stderr.write(f"exported {count} audit events ({fmt}) to {target}")
