"""Load benchmark: N surgeons replay a planning session against a running site.

    make run &                                   # the site as it is served (gunicorn)
    python manage.py bench_load --users 50 --seconds 60 [--during-training]

Each virtual user signs in through the login form and then, every second (think time,
jittered 0.8-1.2), asks for the next page or API call of a planning session on the newest
plan: patient list, patient page, plan page, both view images, plan and version API,
tool pose. Prints a table (requests, errors, p50/p95/max ms per request) and writes JSON.
The users are made for the run (Surgeon role, in the plan patient's care team) and
deleted after it; their audit rows stay, kept by name.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import requests
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from webapp.core.roles import SURGEON
from webapp.planning.load_replay import Step, replay, summarise
from webapp.planning.models import Plan

USER_PREFIX = "bench-load-"


def session_steps(plan: Plan) -> list[Step]:
    """The requests of one planning session on ``plan``."""
    return [
        Step("patient list", reverse("records:patient-list")),
        Step("patient page", reverse("records:patient-detail", args=[plan.patient_id])),
        Step("plan page", reverse("planning:plan", args=[plan.pk])),
        Step("view 1 image", reverse("planning:view-image", args=[plan.pk, 1])),
        Step("view 2 image", reverse("planning:view-image", args=[plan.pk, 2])),
        Step("plan API", reverse("planning-api:plan-detail", args=[plan.pk])),
        Step("versions API", reverse("planning-api:plan-versions", args=[plan.pk])),
        Step("tool pose API", reverse("planning-api:plan-tool-pose", args=[plan.pk])),
    ]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running site")
        parser.add_argument("--users", type=int, default=50)
        parser.add_argument("--seconds", type=float, default=60.0)
        parser.add_argument("--think", type=float, default=1.0, help="seconds between requests")
        parser.add_argument("--during-training", action="store_true",
                            help="start a quick training of the plan's CT first (needs a worker)")
        parser.add_argument("--json", default="bench_out/bench_load.json")

    def handle(self, *args, **opts):
        if not 1 <= opts["users"] <= 500 or not 1 <= opts["seconds"] <= 3600:
            raise CommandError("--users must be 1-500 and --seconds 1-3600")
        base = opts["url"].rstrip("/")
        try:
            requests.get(f"{base}/healthz", timeout=10).raise_for_status()
        except requests.RequestException as exc:
            raise CommandError(f"the site at {base} does not answer /healthz ({exc})") from None
        plan = Plan.objects.select_related("patient").order_by("-pk").first()
        if plan is None:
            raise CommandError("no plan to replay: load the demo first (python manage.py load_demo)")
        team = plan.patient.care_teams.first()
        if team is None:
            raise CommandError(f"the patient of plan {plan.pk} has no care team")
        training = self._start_training(plan) if opts["during_training"] else None
        users = self._make_users(opts["users"], team)
        try:
            t0 = time.perf_counter()
            recorder = replay(base, users, session_steps(plan), opts["seconds"], opts["think"])
            wall = time.perf_counter() - t0
        finally:
            User.objects.filter(username__startswith=USER_PREFIX).delete()
        report = summarise(recorder.samples)
        report["config"] = {
            "url": base, "users": opts["users"], "seconds": opts["seconds"],
            "think_s": opts["think"], "plan_id": plan.pk, "wall_s": round(wall, 1),
        }
        if training is not None:
            training.refresh_from_db()
            report["config"]["training_job"] = {"id": training.pk, "status": training.status,
                                                "progress": training.progress}
        self._print(report)
        out = Path(opts["json"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        self.stdout.write(f"wrote {out}")

    def _make_users(self, n: int, team) -> list[tuple[str, str]]:
        User.objects.filter(username__startswith=USER_PREFIX).delete()
        group, _ = Group.objects.get_or_create(name=SURGEON)
        password = secrets.token_urlsafe(18)
        users = []
        for i in range(n):
            user = User.objects.create_user(f"{USER_PREFIX}{i:03d}", password=password)
            user.groups.add(group)
            team.members.add(user)
            users.append((user.username, password))
        return users

    def _start_training(self, plan: Plan):
        from webapp.records.models import CTStudy
        from webapp.xray_registration.services import start_training

        study = CTStudy.objects.filter(patient=plan.patient, status=CTStudy.Status.READY).first()
        if study is None:
            raise CommandError("--during-training needs a ready CT study of the plan's patient")
        model = start_training(study, "quick")
        self.stdout.write(f"training job {model.job_id} queued; waiting for a worker to take it")
        for _ in range(120):
            model.job.refresh_from_db()
            if model.job.status == "running":
                return model.job
            time.sleep(1.0)
        raise CommandError("no worker took the training job within 2 minutes")

    def _print(self, report: dict) -> None:
        self.stdout.write(f"{'request':<16}{'n':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
        rows = [*report["by_request"].items(), ("ALL (no sign-in)", report["overall"])]
        for label, fig in rows:
            self.stdout.write(
                f"{label:<16}{fig['requests']:>7}{fig['errors']:>8}"
                f"{fig['p50_ms'] or 0:>9.1f}{fig['p95_ms'] or 0:>9.1f}{fig['max_ms'] or 0:>9.1f}"
            )
