"""Review dashboard data: registrations a reviewer may see, filtered, as flat rows (for
the Plotly charts and the CSV export) and summary figures."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

from django.db.models import QuerySet

from webapp.records.access import scope
from webapp.xray_registration.models import Registration

CSV_COLUMNS = [
    "registration_id",
    "patient_mrn",
    "patient_id",
    "xray_id",
    "xray",
    "study_id",
    "model_id",
    "created_at",
    "status",
    "message",
    "seconds",
    "n_correspondences",
    "n_inliers",
    "similarity",
    "true_mtre_mm",
    "n_landmarks",
    "landmark_mean_error_px",
    "landmark_mean_error_mm",
    "review_status",
    "reviewed_by",
    "reviewed_at",
    "review_comment",
    "stage_seconds",
]


def visible_registrations(user) -> QuerySet[Registration]:
    return scope(
        Registration.objects.select_related("xray__patient", "reviewed_by").prefetch_related(
            "landmarks"
        ),
        user,
        patient_path="xray__patient",
    )


def filter_registrations(user, filters: dict) -> QuerySet[Registration]:
    """Visible registrations filtered by ``patient`` (id), ``status``, ``review`` (review
    status), ``date_from`` / ``date_to`` (dates, inclusive, on the creation date)."""
    rows = visible_registrations(user)
    if filters.get("patient"):
        rows = rows.filter(xray__patient_id=filters["patient"])
    if filters.get("status"):
        rows = rows.filter(status=filters["status"])
    if filters.get("review"):
        rows = rows.filter(review_status=filters["review"])
    if filters.get("date_from"):
        rows = rows.filter(created_at__date__gte=filters["date_from"])
    if filters.get("date_to"):
        rows = rows.filter(created_at__date__lte=filters["date_to"])
    return rows.order_by("-created_at", "-id")


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else ""


def registration_row(reg: Registration) -> dict:
    landmarks = list(reg.landmarks.all())
    errs_px = [lm.error_px for lm in landmarks if lm.error_px is not None]
    errs_mm = [lm.error_mm_at_detector for lm in landmarks if lm.error_mm_at_detector is not None]
    stages = {
        name: info.get("seconds")
        for name, info in (reg.stages or {}).items()
        if isinstance(info, dict) and isinstance(info.get("seconds"), int | float)
    }
    patient = reg.xray.patient
    return {
        "registration_id": reg.pk,
        "patient_mrn": patient.mrn,
        "patient_id": patient.pk,
        "xray_id": reg.xray_id,
        "xray": reg.xray.description,
        "study_id": reg.study_id,
        "model_id": reg.model_id,
        "created_at": _iso(reg.created_at),
        "status": reg.status,
        "message": reg.message,
        "seconds": reg.seconds,
        "n_correspondences": reg.n_correspondences,
        "n_inliers": reg.n_inliers,
        "similarity": reg.similarity,
        "true_mtre_mm": (reg.quality or {}).get("true_mtre_mm"),
        "n_landmarks": len(landmarks),
        "landmark_errors_px": errs_px,
        "landmark_errors_mm": errs_mm,
        "landmark_mean_error_px": round(statistics.fmean(errs_px), 4) if errs_px else None,
        "landmark_mean_error_mm": round(statistics.fmean(errs_mm), 4) if errs_mm else None,
        "review_status": reg.review_status,
        "reviewed_by": reg.reviewed_by.username if reg.reviewed_by else "",
        "reviewed_at": _iso(reg.reviewed_at),
        "review_comment": reg.review_comment,
        "stages": stages,
        "stage_seconds": ";".join(f"{k}={v:.4f}" for k, v in stages.items()),
    }


def summary(rows: list[dict]) -> dict:
    """Counts, success rate, mTRE figures and per-patient success over ``rows``."""
    finished = [r for r in rows if r["status"] != Registration.Status.RUNNING]
    ok = [r for r in finished if r["status"] == Registration.Status.OK]
    mtre = sorted(r["true_mtre_mm"] for r in ok if r["true_mtre_mm"] is not None)
    lm = [e for r in rows for e in r["landmark_errors_mm"]]
    per_patient: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in finished:
        per_patient[r["patient_mrn"]][1] += 1
        per_patient[r["patient_mrn"]][0] += r["status"] == Registration.Status.OK
    return {
        "n": len(rows),
        "n_finished": len(finished),
        "n_ok": len(ok),
        "success_rate": round(len(ok) / len(finished), 4) if finished else None,
        "n_true_mtre": len(mtre),
        "median_true_mtre_mm": round(statistics.median(mtre), 4) if mtre else None,
        "n_landmarks": len(lm),
        "median_landmark_error_mm": round(statistics.median(lm), 4) if lm else None,
        "accepted": sum(r["review_status"] == "accepted" for r in rows),
        "rejected": sum(r["review_status"] == "rejected" for r in rows),
        "pending": sum(r["review_status"] == "pending" for r in rows),
        "per_patient": [
            {
                "patient_mrn": mrn,
                "ok": c[0],
                "finished": c[1],
                "success_rate": round(c[0] / c[1], 4),
            }
            for mrn, c in sorted(per_patient.items())
        ],
    }
