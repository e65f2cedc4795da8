"""REST API for jobs: list and detail (same visibility as the pages) and cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.core.audit import record
from webapp.core.reauth import RecentAuthPermission
from webapp.jobs.models import Job
from webapp.jobs.services import cancel_job, visible_jobs


class JobSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)
    error = serializers.CharField(source="error_line", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    is_finished = serializers.BooleanField(read_only=True)
    duration_s = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "label",
            "queue",
            "status",
            "progress",
            "message",
            "error",
            "params",
            "result",
            "timings",
            "live",
            "attempts",
            "created_by",
            "patient",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "cancel_requested",
            "is_finished",
            "duration_s",
        ]
        read_only_fields = fields


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Background jobs you may see. Filter with ``?status=running`` or ``?patient=<id>``."""

    serializer_class = JobSerializer
    queryset = Job.objects.none()

    def get_queryset(self):
        rows = visible_jobs(self.request.user).select_related("created_by", "patient")
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in Job.Status.values:
                raise serializers.ValidationError(
                    {
                        "status": f"unknown status {wanted!r}; use one of {', '.join(Job.Status.values)}"
                    }
                )
            rows = rows.filter(status=wanted)
        patient = self.request.query_params.get("patient")
        if patient:
            if not patient.isdigit():
                raise serializers.ValidationError({"patient": "must be a patient id (a number)"})
            rows = rows.filter(patient_id=int(patient))
        return rows

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        job = self.get_object()
        if job.patient_id:
            record(request, "view", patient=job.patient, obj=job, detail=f"job {job.kind} (API)")
        return Response(self.get_serializer(job).data)

    @extend_schema(request=None, responses={200: JobSerializer, 409: None})
    @action(
        detail=True, methods=["post"], permission_classes=[IsAuthenticated, RecentAuthPermission]
    )
    def cancel(self, request: Request, pk=None) -> Response:
        """Cancel the job: a queued one at once, a running one at its next progress step."""
        job = self.get_object()
        if job.is_finished:
            return Response(
                {"detail": f"job #{job.pk} has already finished ({job.status})"},
                status=status.HTTP_409_CONFLICT,
            )
        job = cancel_job(job, request.user, request=request)
        return Response(self.get_serializer(job).data)
