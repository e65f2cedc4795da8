"""REST serializers for patients, CT studies and X-ray images (read; patients also create)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webapp.records.forms import teams_for
from webapp.records.models import CareTeam, CTStudy, Patient, XrayImage


class _UserTeamsField(serializers.PrimaryKeyRelatedField):
    """Care team ids limited to the requesting user's teams (others read as 'does not exist')."""

    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return CareTeam.objects.none()
        return teams_for(request.user)


class PatientSerializer(serializers.ModelSerializer):
    care_teams = _UserTeamsField(many=True, required=False)
    n_ct_studies = serializers.SerializerMethodField()
    n_xrays = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = [
            "id",
            "mrn",
            "family_name",
            "given_name",
            "birth_date",
            "sex",
            "care_teams",
            "n_ct_studies",
            "n_xrays",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def get_n_ct_studies(self, obj: Patient) -> int:
        return obj.ct_studies.count()

    def get_n_xrays(self, obj: Patient) -> int:
        return obj.xrays.count()

    def validate_mrn(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("MRN is required.")
        if any(ch in value for ch in "/\\\x00") or not value.isprintable():
            raise serializers.ValidationError("MRN may not contain slashes or control characters.")
        return value

    def validate(self, attrs):
        request = self.context.get("request")
        if self.instance is None and request is not None:
            teams = attrs.get("care_teams")
            if not teams:
                own = list(teams_for(request.user)) if not request.user.is_superuser else []
                if not own and not request.user.is_superuser:
                    raise serializers.ValidationError(
                        {
                            "care_teams": "You belong to no care team; a new patient would be invisible to you."
                        }
                    )
                attrs["care_teams"] = own
        return attrs


class CTStudySerializer(serializers.ModelSerializer):
    patient_mrn = serializers.CharField(source="patient.mrn", read_only=True)
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = CTStudy
        fields = [
            "id",
            "patient",
            "patient_mrn",
            "study_instance_uid",
            "series_instance_uid",
            "description",
            "study_date",
            "modality",
            "shape",
            "spacing_mm",
            "affine",
            "hu_min",
            "hu_max",
            "status",
            "provenance",
            "created_at",
            "page_url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_page_url(self, obj: CTStudy) -> str:
        return reverse("records:study-detail", kwargs={"pk": obj.pk})


class XrayImageSerializer(serializers.ModelSerializer):
    patient_mrn = serializers.CharField(source="patient.mrn", read_only=True)
    carm_name = serializers.CharField(source="carm.name", read_only=True, default=None)
    preview_url = serializers.SerializerMethodField()
    has_dewarped = serializers.SerializerMethodField()

    class Meta:
        model = XrayImage
        fields = [
            "id",
            "patient",
            "patient_mrn",
            "carm",
            "carm_name",
            "description",
            "file_format",
            "sop_instance_uid",
            "modality",
            "rows",
            "cols",
            "bits_stored",
            "photometric_interpretation",
            "distance_source_to_detector_mm",
            "distance_source_to_patient_mm",
            "pixel_spacing_x_mm",
            "pixel_spacing_y_mm",
            "primary_angle_deg",
            "secondary_angle_deg",
            "acquired_at",
            "has_dewarped",
            "created_at",
            "preview_url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_preview_url(self, obj: XrayImage) -> str:
        return reverse("records:xray-preview", kwargs={"pk": obj.pk})

    def get_has_dewarped(self, obj: XrayImage) -> bool:
        return bool(obj.dewarped_file)
