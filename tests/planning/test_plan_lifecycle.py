"""Plan rows follow their patient; X-rays used by a plan cannot be deleted on their own (RESTRICT)."""

from __future__ import annotations

import pytest
from django.db.models import RestrictedError

from webapp.planning.models import Plan, PlanVersion


def test_deleting_patient_deletes_plans(plan_a, patient_a):
    assert PlanVersion.objects.filter(plan=plan_a).count() == 1
    patient_a.delete()
    assert not Plan.objects.exists() and not PlanVersion.objects.exists()


def test_xray_of_a_plan_is_protected(plan_a):
    with pytest.raises(RestrictedError):
        plan_a.xray1.delete()
