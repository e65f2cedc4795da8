"""REST API for patients, CT studies and X-ray images. Every queryset goes through
:mod:`webapp.records.access`, so another team's records answer 404 like missing ones;
reads of single records and creations are audited."""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.core.roles import SURGEON, has_role
from webapp.records.access import scope, visible_patients
from webapp.records.forms import MRN_TAKEN
from webapp.records.models import CTStudy, Patient, XrayImage
from webapp.records.serializers import CTStudySerializer, PatientSerializer, XrayImageSerializer
from webapp.records.upload_api import PatientUploadsMixin

A = AuditEvent.Action

PATIENT_FILTER = OpenApiParameter(
    "patient", OpenApiTypes.INT, description="only records of this patient id"
)


class _AuditedRetrieveMixin:
    def retrieve(self, request, *args, **kwargs):
        response = super().retrieve(request, *args, **kwargs)
        obj = self._retrieved
        patient = getattr(obj, "patient", obj)
        record(request, A.VIEW, patient=patient, obj=obj, detail=f"API {self.basename} detail")
        return response

    def get_object(self):
        self._retrieved = super().get_object()
        return self._retrieved


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("search", OpenApiTypes.STR, description="MRN or name")]
    )
)
class PatientViewSet(
    _AuditedRetrieveMixin,
    PatientUploadsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Patients of the caller's care teams (all for site admins). Surgeons may create them
    and upload CT and X-ray images to them (imports run as jobs)."""

    serializer_class = PatientSerializer

    def get_queryset(self):
        queryset = visible_patients(self.request.user).prefetch_related("care_teams")
        search = (self.request.query_params.get("search") or "").strip()[:100]
        for word in search.split():
            queryset = queryset.filter(
                Q(mrn__icontains=word)
                | Q(family_name__icontains=word)
                | Q(given_name__icontains=word)
            )
        return queryset.order_by("family_name", "given_name", "mrn")

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        record(
            request,
            A.VIEW,
            detail=f"API patient list search={request.query_params.get('search', '')!r}",
        )
        return response

    def create(self, request, *args, **kwargs):
        # the role first: a user who may not create patients learns nothing about MRNs
        if not has_role(request.user, SURGEON):
            raise PermissionDenied("Only surgeons and site admins create patients.")
        mrn = str(request.data.get("mrn", "") if hasattr(request.data, "get") else "").strip()
        if mrn and Patient.objects.filter(mrn=mrn).exists():
            record(request, A.CREATE, detail="API patient create refused: MRN already registered")
            return Response({"mrn": [MRN_TAKEN]}, status=400)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        patient = serializer.save()
        record(self.request, A.CREATE, patient=patient, obj=patient, detail="API patient created")


class _PatientRecordViewSet(_AuditedRetrieveMixin, viewsets.ReadOnlyModelViewSet):
    model = None

    def get_queryset(self):
        queryset = scope(self.model.objects.select_related("patient"), self.request.user)
        patient = self.request.query_params.get("patient")
        if patient:
            if not patient.isdigit():
                return queryset.none()
            queryset = queryset.filter(patient_id=int(patient))
        return queryset.order_by("-created_at", "-id")


@extend_schema_view(list=extend_schema(parameters=[PATIENT_FILTER]))
class CTStudyViewSet(_PatientRecordViewSet):
    """CT studies of visible patients (metadata; slices come from the viewer endpoints)."""

    model = CTStudy
    serializer_class = CTStudySerializer


@extend_schema_view(list=extend_schema(parameters=[PATIENT_FILTER]))
class XrayImageViewSet(_PatientRecordViewSet):
    """X-ray images of visible patients with their acquisition geometry."""

    model = XrayImage
    serializer_class = XrayImageSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("carm")
