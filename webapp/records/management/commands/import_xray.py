"""``manage.py import_xray PATH --patient MRN [--carm NAME] [--description TEXT]
[--pixel-spacing SX SY]``

Imports one DICOM (XA, RF, DX, CR) or PNG X-ray; creates the patient when the MRN is new.
A PNG needs ``--carm`` (its pixel spacing and source-to-detector distance give the geometry).
Prints the new X-ray id; refusals exit non-zero with a one-line message and store nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from webapp.records.ct_import import ImportRefused
from webapp.records.models import CArm, Patient
from webapp.records.signals import announce_xray_stored
from webapp.records.xray_import import import_xray


class Command(BaseCommand):
    help = "Import an X-ray image (DICOM XA/RF/DX/CR or PNG) for a patient; prints its id."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="DICOM or PNG file")
        parser.add_argument("--patient", required=True, help="patient MRN (created when new)")
        parser.add_argument("--carm", default=None, help="C-arm name (required for PNG)")
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--pixel-spacing",
            nargs=2,
            type=float,
            metavar=("SX", "SY"),
            default=None,
            help="detector pixel spacing in mm (column, row); overrides header and C-arm",
        )

    def handle(self, *args, **options) -> None:
        mrn = (options["patient"] or "").strip()
        if not mrn or len(mrn) > 64:
            raise CommandError("--patient must be an MRN of 1 to 64 characters")
        carm = None
        if options["carm"]:
            carm = CArm.objects.filter(name=options["carm"]).first()
            if carm is None:
                raise CommandError(f"no C-arm named {options['carm']!r}")
        try:
            with transaction.atomic():
                patient, _created = Patient.objects.get_or_create(mrn=mrn)
                xray = import_xray(
                    options["path"],
                    patient,
                    carm=carm,
                    description=options["description"],
                    pixel_spacing_mm=options["pixel_spacing"],
                )
        except ImportRefused as exc:
            raise CommandError(exc.message) from None
        announce_xray_stored(xray)
        for note in getattr(xray, "import_notes", []):
            self.stderr.write(f"note: {note}")
        self.stdout.write(str(xray.pk))
