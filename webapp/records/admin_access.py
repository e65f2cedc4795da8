"""Admin pages go through the access rules like every other page: a staff user sees and
chooses only the patients of their care teams (site admins see all), and stored files are
never linked raw (their downloads go through the audited pages)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import FileField

from webapp.core.reauth_admin import RecentAuthAdminMixin
from webapp.records.access import scope, visible_patients
from webapp.records.models import Patient


class PatientScopedAdmin(RecentAuthAdminMixin, admin.ModelAdmin):
    """A ModelAdmin of rows that belong to a patient reached by ``patient_path``."""

    patient_path = "patient"

    def get_queryset(self, request):
        return scope(super().get_queryset(request), request.user, self.patient_path)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and hasattr(field, "queryset"):
            field.queryset = scoped_choices(field.queryset, request.user)
        return field

    def get_readonly_fields(self, request, obj=None):
        files = self._file_fields()
        names = [n for n in super().get_readonly_fields(request, obj) if n not in files]
        return [*names, "stored_files"] if files else names

    def get_exclude(self, request, obj=None):
        return [*(super().get_exclude(request, obj) or []), *self._file_fields()]

    @admin.display(description="stored files")
    def stored_files(self, obj) -> str:
        """Which files are stored, without a link (downloads go through audited pages)."""
        stored = [name.replace("_", " ") for name in self._file_fields() if getattr(obj, name)]
        return ", ".join(stored) + " (download from the record page)" if stored else "none"

    def _file_fields(self) -> list[str]:
        return [f.name for f in self.model._meta.fields if isinstance(f, FileField)]


def scoped_choices(queryset, user):
    """Foreign-key choices limited to what ``user`` may see."""
    model = queryset.model
    if model is Patient:
        return visible_patients(user)
    if any(f.name == "patient" for f in model._meta.fields):
        return scope(queryset, user)
    if any(f.name == "study" for f in model._meta.fields):
        return scope(queryset, user, "study__patient")
    if any(f.name == "xray" for f in model._meta.fields):
        return scope(queryset, user, "xray__patient")
    return queryset
