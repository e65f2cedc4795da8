from django.contrib import admin

from webapp.core.reauth_admin import RecentAuthAdminMixin
from webapp.jobs.models import Job
from webapp.jobs.services import cancel_job


@admin.register(Job)
class JobAdmin(RecentAuthAdminMixin, admin.ModelAdmin):
    reauth_actions = frozenset({"delete_selected", "cancel_selected"})
    list_display = (
        "id",
        "kind",
        "status",
        "progress",
        "patient",
        "created_by",
        "created_at",
        "attempts",
        "worker",
    )
    list_filter = ("status", "kind", "queue")
    search_fields = ("kind", "message", "error", "worker")
    date_hierarchy = "created_at"
    actions = ["cancel_selected"]
    readonly_fields = [field.name for field in Job._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # jobs are started by the site (or the diagnostic button on the job list)

    @admin.action(description="Cancel selected jobs")
    def cancel_selected(self, request, queryset) -> None:
        count = 0
        for job in queryset.exclude(status__in=Job.FINISHED):
            cancel_job(job, request.user, request=request)
            count += 1
        self.message_user(request, f"Asked {count} job(s) to cancel.")
