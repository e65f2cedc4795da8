from django.contrib import admin

from webapp.calibration.models import CalibrationProfile, Phantom
from webapp.core.reauth_admin import RecentAuthAdminMixin


@admin.register(Phantom)
class PhantomAdmin(RecentAuthAdminMixin, admin.ModelAdmin):
    list_display = ("name", "builtin", "n_beads", "created_by", "created_at")
    readonly_fields = ("builtin", "created_by", "created_at")


@admin.register(CalibrationProfile)
class CalibrationProfileAdmin(RecentAuthAdminMixin, admin.ModelAdmin):
    list_display = ("carm", "version", "status", "primary_angle_deg", "secondary_angle_deg", "rms_mm", "beads_used", "calibrated_at")
    list_filter = ("status", "carm")
    readonly_fields = ("data", "calibrated_by", "calibrated_at", "reviewed_by", "reviewed_at")
