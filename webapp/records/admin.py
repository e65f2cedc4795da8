"""Admin pages for clinical records. Site admins (superusers) manage care teams, patients,
C-arms, CT studies and X-ray images here; stored files are shown, never re-uploaded."""

from __future__ import annotations

from django.contrib import admin

from webapp.core.reauth_admin import RecentAuthAdminMixin
from webapp.records.access import visible_patients
from webapp.records.admin_access import PatientScopedAdmin
from webapp.records.models import CareTeam, CArm, CTStudy, Patient, XrayImage


@admin.register(CareTeam)
class CareTeamAdmin(RecentAuthAdminMixin, admin.ModelAdmin):
    list_display = ("name", "member_count", "patient_count")
    search_fields = ("name", "members__username")
    filter_horizontal = ("members",)

    @admin.display(description="members")
    def member_count(self, obj: CareTeam) -> int:
        return obj.members.count()

    @admin.display(description="patients")
    def patient_count(self, obj: CareTeam) -> int:
        return obj.patients.count()


class CTStudyInline(admin.TabularInline):
    model = CTStudy
    extra = 0
    fields = ("description", "modality", "study_date", "status", "shape", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class XrayInline(admin.TabularInline):
    model = XrayImage
    extra = 0
    fields = ("description", "modality", "carm", "rows", "cols", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(RecentAuthAdminMixin, admin.ModelAdmin):
    list_display = ("mrn", "family_name", "given_name", "birth_date", "sex", "teams")
    list_filter = ("sex", "care_teams")
    search_fields = ("mrn", "family_name", "given_name")
    filter_horizontal = ("care_teams",)
    readonly_fields = ("created_at",)
    inlines = (CTStudyInline, XrayInline)

    def get_queryset(self, request):
        visible = visible_patients(request.user).values("pk")
        return super().get_queryset(request).filter(pk__in=visible).prefetch_related("care_teams")

    @admin.display(description="care teams")
    def teams(self, obj: Patient) -> str:
        return ", ".join(team.name for team in obj.care_teams.all())


@admin.register(CArm)
class CArmAdmin(RecentAuthAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "manufacturer",
        "model_name",
        "detector_type",
        "detector_width_px",
        "detector_height_px",
    )
    list_filter = ("detector_type",)
    search_fields = ("name", "manufacturer", "model_name")
    readonly_fields = ("created_at",)


@admin.register(CTStudy)
class CTStudyAdmin(PatientScopedAdmin):
    list_display = ("__str__", "patient", "modality", "study_date", "status", "created_at")
    list_filter = ("status", "modality")
    search_fields = ("patient__mrn", "description", "series_instance_uid", "study_instance_uid")
    readonly_fields = (
        "volume_file",
        "shape",
        "spacing_mm",
        "affine",
        "hu_min",
        "hu_max",
        "provenance",
        "created_by",
        "created_at",
    )


@admin.register(XrayImage)
class XrayImageAdmin(PatientScopedAdmin):
    list_display = ("__str__", "patient", "carm", "modality", "rows", "cols", "created_at")
    list_filter = ("modality", "file_format", "carm")
    search_fields = ("patient__mrn", "description", "sop_instance_uid")
    readonly_fields = (
        "original_file",
        "dewarped_file",
        "dewarp_info",
        "file_format",
        "rows",
        "cols",
        "bits_stored",
        "created_by",
        "created_at",
    )
