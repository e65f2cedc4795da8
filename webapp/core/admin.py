"""Admin pages for cross-cutting records: a read-only browser for the audit trail."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from webapp.core.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Browse the append-only audit trail: no add, change or delete, only filters and search;
    the export page (CSV or DICOM audit messages) hangs off it."""

    list_display = (
        "created_at",
        "username",
        "action",
        "patient_mrn",
        "object_type",
        "object_id",
        "ip_address",
        "detail",
    )
    list_filter = ("action", ("created_at", admin.DateFieldListFilter), "username")
    search_fields = ("patient_mrn", "username", "detail", "path")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    list_per_page = 100
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    def get_urls(self):
        """The export page (``admin:core_auditevent_export``) before the object URLs."""
        from webapp.core.audit_export_views import export_page

        return [path("export/", export_page, name="core_auditevent_export"), *super().get_urls()]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser
