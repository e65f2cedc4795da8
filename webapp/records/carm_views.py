"""C-arm pages: list, detail with calibration profiles, create and edit (calibration admins)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.records.access import (
    can_manage_carms,
)
from webapp.records.forms import (
    CArmForm,
)
from webapp.records.models import CArm

A = AuditEvent.Action


# --------------------------------------------------------------------------- C-arms


@login_required
def carm_list(request: HttpRequest) -> HttpResponse:
    carms = CArm.objects.annotate(n_xrays=Count("xrays"))
    return render(
        request,
        "records/carm_list.html",
        {"carms": carms, "can_manage": can_manage_carms(request.user)},
    )


@login_required
def carm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    carm = get_object_or_404(CArm, pk=pk)
    return render(
        request,
        "records/carm_detail.html",
        {
            "carm": carm,
            "can_manage": can_manage_carms(request.user),
            "profiles": _calibration_profiles(carm),
        },
    )


def _calibration_profiles(carm: CArm) -> list:
    """The C-arm's calibration profiles when the calibration app provides them."""
    manager = getattr(carm, "profiles", None)
    if manager is None:
        return []
    return list(manager.all()[:20])


@login_required
@require_http_methods(["GET", "POST"])
def carm_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    if not can_manage_carms(request.user):
        raise PermissionDenied("Only calibration admins and site admins change C-arms.")
    carm = get_object_or_404(CArm, pk=pk) if pk is not None else None
    form = CArmForm(request.POST or None, instance=carm)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        record(
            request, A.CREATE if carm is None else A.UPDATE, obj=saved, detail=f"C-arm {saved.name}"
        )
        messages.success(request, f"C-arm {saved.name} saved.")
        return redirect(reverse("records:carm-detail", kwargs={"pk": saved.pk}))
    status = 400 if request.method == "POST" else 200
    return render(request, "records/carm_form.html", {"form": form, "carm": carm}, status=status)
