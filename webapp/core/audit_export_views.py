"""The audit export page (site admins): a small form (format, first and last day) whose
answer is the file, downloaded; the export is audited like ``manage.py export_audit``."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from webapp.core.audit_export import (
    CONTENT_TYPES,
    ExportRefused,
    day_bound,
    file_name,
    iter_export,
    start_export,
)


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[("csv", "CSV (one row per event)"), ("dicom", "DICOM audit messages (XML)")],
        initial="csv",
    )
    since = forms.DateField(
        required=False, label="First day (empty: from the start)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = forms.DateField(
        required=False, label="Last day, included (empty: up to now)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The first day is after the last day.")
        return data


def can_export(user) -> bool:
    """Site admins: staff superusers, who also browse the trail in the admin."""
    return bool(user.is_active and user.is_staff and user.is_superuser)


@login_required
def export_page(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: the file (``Cache-Control: no-store``), the export audited."""
    if not can_export(request.user):
        raise PermissionDenied("only site admins export the audit trail")
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        fmt = form.cleaned_data["format"]
        since = day_bound(form.cleaned_data["since"]) if form.cleaned_data["since"] else None
        until = day_bound(form.cleaned_data["until"], upper=True) if form.cleaned_data["until"] else None
        try:
            events, _ = start_export(request, fmt, since, until, via="export page")
        except ExportRefused as exc:
            form.add_error(None, str(exc))
        else:
            response = StreamingHttpResponse(iter_export(fmt, events), content_type=CONTENT_TYPES[fmt])
            response["Content-Disposition"] = f'attachment; filename="{file_name(fmt, since, until)}"'
            add_never_cache_headers(response)
            return response
    response = render(request, "core/audit_export.html", {"form": form})
    add_never_cache_headers(response)
    return response
