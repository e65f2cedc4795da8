"""REST uploads: ``POST /api/patients/{id}/ct-upload/`` and ``/xray-upload/`` (multipart).

The request is checked as the page's forms check it, the files are staged and an import job
is queued: the answer is ``202`` with the job's id and where to follow it (``job`` in the
API, ``url`` its page); the finished job's ``result`` holds ``study_id`` / ``xray_id`` and
``result_url``. A bad upload is a ``400`` naming the problem; nothing is stored."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from webapp.records.access import can_edit_records
from webapp.records.forms import CTUploadForm, XrayUploadForm
from webapp.records.uploads import UploadRefused, start_ct_import, start_xray_import


class CTUploadRequestSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(),
        help_text="DICOM files of one series, or one .zip, or one NIfTI (.nii/.nii.gz)",
    )
    description = serializers.CharField(required=False, max_length=300)
    deidentify = serializers.BooleanField(required=False, help_text="'true' or 'false'")


class XrayUploadRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="DICOM (XA, RF, DX, CR) or 8/16-bit PNG")
    carm = serializers.IntegerField(required=False, help_text="C-arm id (required for PNG)")
    description = serializers.CharField(required=False, max_length=300)


class UploadAcceptedSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    status = serializers.CharField()
    job = serializers.CharField(help_text="the job in the API")
    status_url = serializers.CharField()
    url = serializers.CharField(help_text="the job's page")


def _accepted(job) -> Response:
    api_url = reverse("api-job-detail", args=[job.pk])
    body = {
        "job_id": job.pk,
        "status": job.status,
        "job": api_url,
        "status_url": reverse("jobs:job-status", args=[job.pk]),
        "url": reverse("jobs:job-detail", args=[job.pk]),
    }
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": api_url})


def _refused(form, field: str, exc: UploadRefused | None = None) -> Response:
    if exc is not None:
        form.add_error(field, str(exc))
    errors = {
        name: [str(message) for message in messages] for name, messages in form.errors.items()
    }
    return Response(errors, status=status.HTTP_400_BAD_REQUEST)


class PatientUploadsMixin:
    """Adds the two upload actions to the patient viewset (patient access through its
    ``get_object``: another team's patient answers 404)."""

    def _upload_patient(self, request):
        patient = self.get_object()
        if not can_edit_records(request.user):
            raise PermissionDenied("Only surgeons and site admins upload images.")
        return patient

    @extend_schema(
        request={"multipart/form-data": CTUploadRequestSerializer},
        responses={202: UploadAcceptedSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="ct-upload",
        parser_classes=[MultiPartParser, FormParser],
    )
    def ct_upload(self, request, pk=None) -> Response:
        """Upload a CT (DICOM series, .zip or NIfTI); its import runs as a job."""
        patient = self._upload_patient(request)
        form = CTUploadForm(request.data, request.FILES)
        if not form.is_valid():
            return _refused(form, "files")
        try:
            job = start_ct_import(
                patient=patient,
                files=form.cleaned_data["files"],
                description=form.cleaned_data["description"],
                deidentify=form.cleaned_data["deidentify"],
                request=request,
            )
        except UploadRefused as exc:
            return _refused(form, "files", exc)
        return _accepted(job)

    @extend_schema(
        request={"multipart/form-data": XrayUploadRequestSerializer},
        responses={202: UploadAcceptedSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="xray-upload",
        parser_classes=[MultiPartParser, FormParser],
    )
    def xray_upload(self, request, pk=None) -> Response:
        """Upload one X-ray (DICOM or PNG with ``carm``); its import runs as a job."""
        patient = self._upload_patient(request)
        form = XrayUploadForm(request.data, request.FILES)
        if not form.is_valid():
            return _refused(form, "file")
        try:
            job = start_xray_import(
                patient=patient,
                upload=form.cleaned_data["file"],
                carm=form.cleaned_data["carm"],
                description=form.cleaned_data["description"],
                request=request,
            )
        except UploadRefused as exc:
            return _refused(form, "file", exc)
        return _accepted(job)
