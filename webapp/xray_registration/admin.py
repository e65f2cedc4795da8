"""Admin pages of registration models, registrations and landmarks, scoped to the staff
user's care teams (:mod:`webapp.records.admin_access`)."""

from django.contrib import admin

from webapp.records.admin_access import PatientScopedAdmin
from webapp.xray_registration.models import LandmarkPair, Registration, RegistrationModel


@admin.register(RegistrationModel)
class RegistrationModelAdmin(PatientScopedAdmin):
    patient_path = "study__patient"
    list_display = ("id", "study", "preset", "status", "created_at")
    list_filter = ("status", "preset")
    readonly_fields = ("model_json", "training_curve", "storage_prefix", "job", "created_at")


class LandmarkInline(admin.TabularInline):
    model = LandmarkPair
    extra = 0
    readonly_fields = ("error_px", "error_mm_at_detector", "created_by", "created_at")


@admin.register(Registration)
class RegistrationAdmin(PatientScopedAdmin):
    patient_path = "xray__patient"
    list_display = ("id", "xray", "study", "status", "review_status", "seconds", "created_at")
    list_filter = ("status", "review_status")
    readonly_fields = ("T_cam_from_world", "camera", "quality", "stages", "job", "created_at")
    inlines = [LandmarkInline]
