"""``manage.py import_ct PATH... --patient MRN [--series UID] [--deidentify] [--description TEXT]``

Imports a DICOM series (files, a folder or a .zip) or a NIfTI file as a CT study; creates the
patient when the MRN is new. Prints the new study id. Refusals exit non-zero with a one-line
message and leave nothing behind (no study, no patient, no stored file).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from webapp.records.ct_import import ImportRefused, MultipleSeries, import_ct_study
from webapp.records.models import Patient


class Command(BaseCommand):
    help = "Import a CT (DICOM files/folder/.zip or NIfTI) for a patient; prints the study id."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", help="DICOM files, a folder, a .zip or a .nii[.gz]")
        parser.add_argument("--patient", required=True, help="patient MRN (created when new)")
        parser.add_argument("--series", default=None, help="SeriesInstanceUID to import")
        parser.add_argument("--deidentify", action="store_true", help="PS3.15 basic profile")
        parser.add_argument("--description", default="", help="study description")

    def handle(self, *args, **options) -> None:
        mrn = (options["patient"] or "").strip()
        if not mrn or len(mrn) > 64:
            raise CommandError("--patient must be an MRN of 1 to 64 characters")
        paths = [Path(p) for p in options["paths"]]
        sources = paths[0] if len(paths) == 1 else paths
        try:
            with transaction.atomic():
                patient, _created = Patient.objects.get_or_create(mrn=mrn)
                study = import_ct_study(
                    sources,
                    patient,
                    series_uid=options["series"],
                    deidentify=options["deidentify"],
                    description=options["description"],
                )
        except MultipleSeries as exc:
            raise CommandError(f"{exc.message} (use --series UID)") from None
        except ImportRefused as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(str(study.pk))
