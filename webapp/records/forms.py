"""Forms for record pages. Uploaded file names are never trusted: views store uploads
under generated names and only the recognised suffix (.zip, .nii, .nii.gz, .dcm, .png) is kept."""

from __future__ import annotations

from django import forms
from django.conf import settings

from webapp.records.models import CareTeam, CArm, Patient


def teams_for(user):
    """Care teams a user may assign to a new patient: all for admins, else their own."""
    if getattr(user, "is_superuser", False):
        return CareTeam.objects.all()
    return CareTeam.objects.filter(members=user)


# The same words whether the patient is in the user's team or another one: the answer
# reveals no more than the MRN's uniqueness must.
MRN_TAKEN = (
    "A patient with this MRN already exists. Search the patient list; if you cannot see "
    "the patient, ask an administrator to add your care team to it."
)


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["mrn", "family_name", "given_name", "birth_date", "sex", "care_teams"]
        widgets = {
            "birth_date": forms.DateInput(attrs={"type": "date"}),
            "care_teams": forms.CheckboxSelectMultiple,
        }

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        teams = teams_for(user)
        self.fields["care_teams"].queryset = teams
        self.fields["care_teams"].required = True
        self.fields["care_teams"].help_text = "Only members of these teams will see the patient."
        if "care_teams" not in self.initial and teams.count() == 1:
            self.initial["care_teams"] = [teams.first().pk]

    def clean_mrn(self) -> str:
        mrn = (self.cleaned_data.get("mrn") or "").strip()
        if not mrn:
            raise forms.ValidationError("MRN is required.")
        if any(ch in mrn for ch in "/\\\x00") or not mrn.isprintable():
            raise forms.ValidationError("MRN may not contain slashes or control characters.")
        if Patient.objects.filter(mrn=mrn).exists():
            raise forms.ValidationError(MRN_TAKEN)
        return mrn


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files (a DICOM series) in one input."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(item, initial) for item in data if item]
        return [single(data, initial)] if data else []


def _total_size(files) -> int:
    return sum(getattr(f, "size", 0) or 0 for f in files)


class CTUploadForm(forms.Form):
    files = MultipleFileField(
        label="DICOM files, a .zip of a series, or a NIfTI file (.nii / .nii.gz)",
        required=True,
    )
    description = forms.CharField(max_length=300, required=False)
    deidentify = forms.BooleanField(
        label="De-identify on import (DICOM PS3.15 basic profile)", required=False
    )

    def clean_files(self):
        files = self.cleaned_data.get("files") or []
        if not files:
            raise forms.ValidationError("Choose at least one file.")
        limit = settings.ORTHOFUSE_MAX_UPLOAD_BYTES
        total = _total_size(files)
        if total > limit:
            raise forms.ValidationError(
                f"Upload is {total / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB."
            )
        names = [(f.name or "").lower() for f in files]
        special = [n for n in names if n.endswith((".zip", ".nii", ".nii.gz"))]
        if special and len(files) > 1:
            raise forms.ValidationError(
                "Upload either one .zip, one NIfTI file, or several DICOM files, not a mix."
            )
        return files


class SeriesChoiceForm(forms.Form):
    series_uid = forms.ChoiceField(label="Series to import", widget=forms.RadioSelect)

    def __init__(self, *args, series: list[dict] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = []
        for item in series or []:
            label = (
                f"{item.get('description') or 'no description'} · "
                f"{item.get('modality') or '?'} · {item.get('n_slices', '?')} slices"
            )
            choices.append((str(item.get("uid", "")), label))
        self.fields["series_uid"].choices = choices


class XrayUploadForm(forms.Form):
    file = forms.FileField(label="X-ray: DICOM (XA, RF, DX, CR) or 8/16-bit PNG")
    carm = forms.ModelChoiceField(
        label="C-arm",
        queryset=CArm.objects.all(),
        required=False,
        help_text="Required for PNG images (their geometry comes from the C-arm).",
    )
    description = forms.CharField(max_length=300, required=False)

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is not None:
            if upload.size > settings.ORTHOFUSE_MAX_UPLOAD_BYTES:
                self.add_error("file", "The file is larger than the upload limit.")
            if (upload.name or "").lower().endswith(".png") and not cleaned.get("carm"):
                self.add_error("carm", "Choose the C-arm that took this PNG image.")
        return cleaned


class CArmForm(forms.ModelForm):
    class Meta:
        model = CArm
        fields = [
            "name",
            "manufacturer",
            "model_name",
            "detector_type",
            "detector_width_px",
            "detector_height_px",
            "pixel_spacing_x_mm",
            "pixel_spacing_y_mm",
            "source_to_detector_mm",
            "flip_horizontal",
            "flip_vertical",
            "rotate_deg",
        ]

    def clean(self):
        cleaned = super().clean()
        for name in ("pixel_spacing_x_mm", "pixel_spacing_y_mm", "source_to_detector_mm"):
            value = cleaned.get(name)
            if value is not None and not value > 0:
                self.add_error(name, "Must be a positive number of millimetres.")
        return cleaned
