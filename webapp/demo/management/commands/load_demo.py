"""Load the demo: a care team, demo logins, a patient with the shipped CT, a C-arm, and a
2 MB decompression bomb refused by the real CT import job (a failed job on the Jobs page).

Idempotent: running it again reuses what is there (no duplicate demo data).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from webapp.core.roles import CALIBRATION_ADMIN, REVIEWER, SURGEON
from webapp.records.models import CareTeam, Patient

DEMO_DIR = Path(settings.BASE_DIR) / "demo" / "data"
DEMO_CT = DEMO_DIR / "demo_ct.nii.gz"
DEMO_MRN = "DEMO-0001"
DEMO_TEAM = "Demo trauma team"
DEMO_USERS = (
    ("surgeon", SURGEON, False),
    ("reviewer", REVIEWER, False),
    ("caladmin", CALIBRATION_ADMIN, False),
    ("admin", None, True),
)


class Command(BaseCommand):
    help = "Load the OrthoFuse demo (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--password",
            default="",
            help="password of the demo logins (default: ORTHOFUSE_DEMO_PASSWORD or 'orthofuse-demo')",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="load the demo logins even when DEBUG is off (never on a site with patients)",
        )

    def handle(self, *args, **options) -> None:
        import os

        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "load_demo refused: DEBUG is off and the demo adds logins with a known password "
                "(use --force to load it anyway)"
            )
        password = options["password"] or os.environ.get("ORTHOFUSE_DEMO_PASSWORD") or "orthofuse-demo"
        with transaction.atomic():
            team, _ = CareTeam.objects.get_or_create(name=DEMO_TEAM)
            users = {name: self._user(name, role, superuser, password, team) for name, role, superuser in DEMO_USERS}
            patient, created = Patient.objects.get_or_create(
                mrn=DEMO_MRN,
                defaults={"family_name": "Demo", "given_name": "Pelvis", "sex": Patient.Sex.UNKNOWN},
            )
            patient.care_teams.add(team)
        if created:
            self.stdout.write(f"created demo patient {patient}")
        study = self._demo_ct(patient, users["surgeon"])
        self._demo_imaging(patient, study, users)
        self.stdout.write(self.style.SUCCESS("Demo ready. Log in at http://127.0.0.1:8000/ with:"))
        for name, role, superuser in DEMO_USERS:
            label = "site admin" if superuser else role
            self.stdout.write(f"  user {name:<9} password {password:<16} ({label})")

    def _user(self, name: str, role: str | None, superuser: bool, password: str, team: CareTeam) -> User:
        user, created = User.objects.get_or_create(username=name)
        if created:
            user.set_password(password)
            user.is_superuser = superuser
            user.is_staff = superuser
            user.save()
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        if not superuser:
            team.members.add(user)
        return user

    def _demo_imaging(self, patient: Patient, study, users: dict) -> None:
        from webapp.demo import builder as demo

        carm = demo.demo_carm()
        for profile in demo.demo_calibrations(carm, users["caladmin"]):
            self.stdout.write(f"calibrated {carm.name} at {profile.primary_angle_deg:.0f}°: "
                              f"residual RMS {profile.rms_mm:.3f} mm")
        for xray in demo.demo_xrays(patient, study, carm, users["surgeon"]):
            self.stdout.write(f"simulated C-arm shot '{xray.description}'")
        if demo.demo_plan(patient, users["surgeon"]) is not None:
            self.stdout.write("created an empty two-view demo plan")
        bomb = demo.demo_bomb(patient, users["surgeon"])
        if bomb is not None:
            job, size, declared_gib, peak_mib = bomb
            if job.status != "failed":
                raise CommandError(f"the demo decompression bomb was not refused (job #{job.pk} {job.status})")
            self.stdout.write(
                f"a {size / 1e6:.0f} MB bomb declaring {declared_gib:.0f} GiB was refused "
                f"(peak {peak_mib:.1f} MiB): CT import job #{job.pk} on the Jobs page"
            )
        model = demo.demo_registration_model(study, users["surgeon"])
        if model is not None:
            self.stdout.write(
                f"queued quick training of registration model #{model.pk}: the worker trains it in "
                "the background (progress on the Jobs page)"
            )

    def _demo_ct(self, patient: Patient, user: User):
        from webapp.records.ct_import import ImportRefused, import_ct_study
        from webapp.records.models import CTStudy

        study = patient.ct_studies.filter(status=CTStudy.Status.READY).first()
        if study is not None:
            return study
        if not DEMO_CT.exists():
            raise CommandError(f"demo CT missing: {DEMO_CT}")
        try:
            study = import_ct_study(DEMO_CT, patient, user=user, description="Demo abdomen-pelvis CT (TotalSegmentator example, Apache-2.0)")
        except ImportRefused as exc:
            raise CommandError(f"demo CT refused: {exc}") from exc
        self.stdout.write(f"imported demo CT as study #{study.pk}")
        return study
