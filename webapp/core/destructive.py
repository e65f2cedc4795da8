"""The one list of actions that delete or irreversibly change clinical data (or a user's
credentials) and therefore demand a recent re-authentication (:mod:`webapp.core.reauth`).

A new destructive view is decorated with ``recent_auth_required`` (API: the
``RecentAuthPermission``; admin: ``RecentAuthAdminMixin``) and added here; the test
``tests/core/test_destructive_reauth.py`` walks this list and the URL patterns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Destructive:
    """One destructive action: its URL name, the method and (admin bulk actions) the
    ``action`` form field, and why it is destructive."""

    url_name: str
    why: str
    method: str = "POST"
    admin_action: str = ""


_ADMIN_MODELS = (
    ("records", "patient"),
    ("records", "ctstudy"),
    ("records", "xrayimage"),
    ("records", "carm"),
    ("records", "careteam"),
    ("xray_registration", "registrationmodel"),
    ("xray_registration", "registration"),
    ("calibration", "calibrationprofile"),
    ("calibration", "phantom"),
    ("jobs", "job"),
)

DESTRUCTIVE: tuple[Destructive, ...] = (
    Destructive("review:landmark-delete", "removes a reviewer's landmark pair"),
    Destructive("jobs:job-cancel", "stops a job; its work is lost"),
    Destructive("registration:model-cancel", "stops a training; the model is lost"),
    Destructive("api-job-cancel", "stops a job through the API (browser sessions)"),
    Destructive(
        "calibration:profile-review", "rejects a profile for good, or retires the active one"
    ),
    Destructive("api-token-create", "hands out a credential that acts as the user"),
    Destructive("api-token-revoke", "revokes a machine's credential for good"),
    Destructive(
        "operating:close", "closes an intra-operative session for good (no reopening)"
    ),
    *(
        Destructive(f"admin:{app}_{model}_delete", f"deletes a {model} row", method="GET")
        for app, model in _ADMIN_MODELS
    ),
    *(
        Destructive(
            f"admin:{app}_{model}_changelist", f"deletes {model} rows in bulk",
            admin_action="delete_selected",
        )
        for app, model in _ADMIN_MODELS
    ),
    Destructive(
        "admin:jobs_job_changelist", "cancels jobs in bulk", admin_action="cancel_selected"
    ),
)

CLINICAL_ADMIN_APPS = frozenset(app for app, _ in _ADMIN_MODELS) | {"planning", "review"}
