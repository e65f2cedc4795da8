"""Per-patient access control: the one place every list, detail, download and API call uses.

A site admin (superuser) sees every patient; everyone else sees only patients of the
care teams they belong to. Invisible objects answer 404, never 403.

Care-team membership is applied as a semi-join (``patient IN (patients of the user's
teams)``), not as a join: a join repeats a row once per shared team and would need
``DISTINCT`` over every column, which PostgreSQL sorts (tens of milliseconds on a plan row).
"""

from __future__ import annotations

from django.db.models import Model, QuerySet
from django.http import Http404

from webapp.records.models import Patient


def _team_patient_ids(user) -> QuerySet:
    """Ids of the patients of ``user``'s care teams (a subquery; may repeat an id)."""
    return Patient.care_teams.through.objects.filter(careteam__members=user).values("patient_id")


def visible_patients(user) -> QuerySet[Patient]:
    """Patients ``user`` may see."""
    if not getattr(user, "is_authenticated", False):
        return Patient.objects.none()
    if user.is_superuser:
        return Patient.objects.all()
    return Patient.objects.filter(pk__in=_team_patient_ids(user))


def scope(queryset: QuerySet, user, patient_path: str = "patient") -> QuerySet:
    """Restrict any queryset whose rows belong to a patient (reached by ``patient_path``)."""
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(**{f"{patient_path}__in": _team_patient_ids(user)})


def get_visible_or_404(
    queryset: QuerySet | type[Model], user, patient_path: str = "patient", **lookup
) -> Model:
    """The object matching ``lookup`` if ``user`` may see it, else :class:`Http404`."""
    if isinstance(queryset, type):
        queryset = queryset._default_manager.all()
    if queryset.model is Patient:
        rows = visible_patients(user).filter(pk__in=queryset.filter(**lookup).values("pk"))
    else:
        rows = scope(queryset.filter(**lookup), user, patient_path)
    obj = rows.first()
    if obj is None:
        raise Http404("not found")
    return obj


def can_see_patient(user, patient: Patient) -> bool:
    return visible_patients(user).filter(pk=patient.pk).exists()


def can_edit_records(user) -> bool:
    """Surgeons (and site admins) create patients and upload images."""
    from webapp.core.roles import SURGEON, has_role

    return has_role(user, SURGEON)


def can_manage_carms(user) -> bool:
    """Calibration admins (and site admins) create and change C-arms."""
    from webapp.core.roles import CALIBRATION_ADMIN, has_role

    return has_role(user, CALIBRATION_ADMIN)
