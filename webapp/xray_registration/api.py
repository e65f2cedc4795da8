"""REST API: /api/registrations/ (list, detail, POST review, POST landmarks) and
/api/registration-models/ (list, detail). Every queryset is scoped through
:mod:`webapp.records.access` (another care team's rows answer 404); reviews need the
Reviewer role; single reads and changes are audited."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from webapp.core.audit import record
from webapp.core.roles import REVIEWER, SURGEON, has_role
from webapp.records.access import get_visible_or_404, scope
from webapp.records.models import CTStudy, XrayImage
from webapp.review.decisions import add_landmark, review_registration
from webapp.xray_registration.models import LandmarkPair, Registration, RegistrationModel
from webapp.xray_registration.services import (
    PRESETS,
    RegistrationRefused,
    start_registration,
    start_training,
)


class LandmarkSerializer(serializers.ModelSerializer):
    class Meta:
        model = LandmarkPair
        fields = [
            "id",
            "u_px",
            "v_px",
            "x_mm",
            "y_mm",
            "z_mm",
            "error_px",
            "error_mm_at_detector",
            "created_at",
        ]
        read_only_fields = ["id", "error_px", "error_mm_at_detector", "created_at"]


class RegistrationSerializer(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="xray.patient_id", read_only=True)
    reviewed_by = serializers.CharField(source="reviewed_by.username", read_only=True, default=None)
    landmarks = LandmarkSerializer(many=True, read_only=True)

    class Meta:
        model = Registration
        fields = [
            "id",
            "patient",
            "xray",
            "study",
            "model",
            "status",
            "message",
            "T_cam_from_world",
            "camera",
            "quality",
            "stages",
            "seconds",
            "n_correspondences",
            "n_inliers",
            "similarity",
            "job",
            "created_at",
            "review_status",
            "review_comment",
            "reviewed_by",
            "reviewed_at",
            "landmarks",
        ]
        read_only_fields = fields


class ReviewSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(
        choices=[Registration.Review.ACCEPTED, Registration.Review.REJECTED]
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class StartRegistrationSerializer(serializers.Serializer):
    xray = serializers.IntegerField(min_value=1)


class StartTrainingSerializer(serializers.Serializer):
    study = serializers.IntegerField(min_value=1)
    preset = serializers.ChoiceField(choices=list(PRESETS), default="quick")


def _require_surgeon(user) -> None:
    if not has_role(user, SURGEON):
        raise PermissionDenied("Only surgeons start training and registrations.")


class RegistrationModelSerializer(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="study.patient_id", read_only=True)

    class Meta:
        model = RegistrationModel
        fields = [
            "id",
            "patient",
            "study",
            "preset",
            "status",
            "model_json",
            "training_curve",
            "job",
            "created_at",
        ]
        read_only_fields = fields


class RegistrationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Registrations of visible patients (``?patient=``, ``?status=``, ``?review_status=``)."""

    serializer_class = RegistrationSerializer

    def get_queryset(self):
        rows = scope(
            Registration.objects.select_related("xray", "reviewed_by").prefetch_related(
                "landmarks"
            ),
            self.request.user,
            patient_path="xray__patient",
        )
        params = self.request.query_params
        if params.get("patient"):
            if not params["patient"].isdigit():
                return rows.none()
            rows = rows.filter(xray__patient_id=int(params["patient"]))
        if params.get("status"):
            rows = rows.filter(status=params["status"])
        if params.get("review_status"):
            rows = rows.filter(review_status=params["review_status"])
        return rows.order_by("-created_at", "-id")

    @extend_schema(request=StartRegistrationSerializer, responses={202: RegistrationSerializer})
    def create(self, request, *args, **kwargs):
        """Start registering an X-ray (surgeons): the latest ready model of its patient's CT."""
        ser = StartRegistrationSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        xray = get_visible_or_404(
            XrayImage.objects.select_related("patient"), request.user, pk=ser.validated_data["xray"]
        )
        _require_surgeon(request.user)
        try:
            reg = start_registration(xray, user=request.user, request=request)
        except RegistrationRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(self.get_serializer(reg).data, status=status.HTTP_202_ACCEPTED)

    def retrieve(self, request, *args, **kwargs):
        reg = self.get_object()
        record(request, "view", patient=reg.xray.patient, obj=reg, detail="API registration detail")
        return Response(self.get_serializer(reg).data)

    def _reviewer_object(self, request) -> Registration:
        reg = self.get_object()  # 404 first for another team's registration
        if not has_role(request.user, REVIEWER):
            raise PermissionDenied("Only reviewers review registrations.")
        return reg

    @extend_schema(request=ReviewSerializer, responses=RegistrationSerializer)
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        reg = self._reviewer_object(request)
        ser = ReviewSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            review_registration(
                reg,
                request.user,
                ser.validated_data["decision"],
                ser.validated_data.get("comment", ""),
                request=request,
            )
        except RegistrationRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(self.get_serializer(reg).data)

    @extend_schema(request=LandmarkSerializer, responses=LandmarkSerializer)
    @action(detail=True, methods=["post"])
    def landmarks(self, request, pk=None):
        reg = self._reviewer_object(request)
        ser = LandmarkSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            pair = add_landmark(
                reg,
                request.user,
                d["u_px"],
                d["v_px"],
                (d["x_mm"], d["y_mm"], d["z_mm"]),
                request=request,
            )
        except RegistrationRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(LandmarkSerializer(pair).data, status=status.HTTP_201_CREATED)


class RegistrationModelViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Registration models of visible patients' CT studies (``?study=``); POST starts
    training one (surgeons)."""

    serializer_class = RegistrationModelSerializer

    def get_queryset(self):
        rows = scope(
            RegistrationModel.objects.select_related("study"),
            self.request.user,
            patient_path="study__patient",
        )
        study = self.request.query_params.get("study")
        if study:
            if not study.isdigit():
                return rows.none()
            rows = rows.filter(study_id=int(study))
        return rows.order_by("-created_at", "-id")

    @extend_schema(request=StartTrainingSerializer, responses={202: RegistrationModelSerializer})
    def create(self, request, *args, **kwargs):
        ser = StartTrainingSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        study = get_visible_or_404(
            CTStudy.objects.select_related("patient"), request.user, pk=ser.validated_data["study"]
        )
        _require_surgeon(request.user)
        try:
            model = start_training(
                study, ser.validated_data["preset"], user=request.user, request=request
            )
        except RegistrationRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(self.get_serializer(model).data, status=status.HTTP_202_ACCEPTED)
