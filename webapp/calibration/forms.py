"""Forms for calibration admins: a phantom image upload and a phantom definition."""

from __future__ import annotations

import json

from django import forms

from calibration.phantom_design import PhantomDesign
from webapp.calibration.models import Phantom
from webapp.records.models import CArm

MAX_PHANTOM_IMAGE_BYTES = 200 * 1024 * 1024
MAX_PHANTOM_JSON_BYTES = 2 * 1024 * 1024


class CalibrationUploadForm(forms.Form):
    carm = forms.ModelChoiceField(queryset=CArm.objects.all(), label="C-arm")
    phantom = forms.ModelChoiceField(queryset=Phantom.objects.all())
    image = forms.FileField(label="Phantom image (DICOM or PNG)")
    primary_angle_deg = forms.FloatField(label="Primary angle (LAO+/RAO-, °)", initial=0.0, min_value=-180, max_value=180)
    secondary_angle_deg = forms.FloatField(label="Secondary angle (cranial+/caudal-, °)", initial=0.0, min_value=-90, max_value=90)
    pixel_spacing_x_mm = forms.FloatField(label="Pixel spacing x (mm, PNG only)", required=False, min_value=0.01, max_value=5)
    pixel_spacing_y_mm = forms.FloatField(label="Pixel spacing y (mm, PNG only)", required=False, min_value=0.01, max_value=5)

    def clean_image(self):
        upload = self.cleaned_data["image"]
        if upload.size > MAX_PHANTOM_IMAGE_BYTES:
            raise forms.ValidationError("the phantom image is larger than 200 MB")
        if upload.size == 0:
            raise forms.ValidationError("the phantom image file is empty")
        return upload

    def clean(self):
        data = super().clean()
        sx, sy = data.get("pixel_spacing_x_mm"), data.get("pixel_spacing_y_mm")
        if (sx is None) != (sy is None):
            raise forms.ValidationError("give both pixel spacings or neither")
        return data


class PhantomForm(forms.Form):
    """An uploaded ``phantom.json``: read here as a JSON object; the engine's parser
    (:func:`calibration.engine.phantom.phantom_from_dict`) judges its content."""

    name = forms.CharField(max_length=200, help_text="stored as the phantom's name")
    definition = forms.FileField(label="phantom.json")

    def clean_definition(self):
        upload = self.cleaned_data["definition"]
        if upload.size > MAX_PHANTOM_JSON_BYTES:
            raise forms.ValidationError("phantom.json is larger than 2 MB")
        try:
            data = json.loads(upload.read().decode("utf-8"))
        except UnicodeDecodeError:
            raise forms.ValidationError("phantom.json is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"phantom.json is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except RecursionError:
            raise forms.ValidationError("phantom.json is nested too deeply") from None
        if not isinstance(data, dict):
            raise forms.ValidationError(
                'phantom.json must be a JSON object ({"name": ..., "beads": [...]} or {"name": ..., "grid": {...}})'
            )
        return data


class PhantomDrawForm(forms.Form):
    """A phantom drawn from a few parameters (:class:`calibration.phantom_design.PhantomDesign`).

    Blank optional fields take the design's defaults; ranges are checked by the drawing
    and by the engine's phantom parser, whose messages the page shows."""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=[("plate", "Grid plate (distortion only)"), ("two-layer", "Two-layer bead phantom")])
    lattice = forms.ChoiceField(choices=[("square", "Square"), ("hex", "Hexagonal")])
    pitch_mm = forms.FloatField(label="Pitch (mm)", initial=10.0)
    diameter_mm = forms.FloatField(label="Bead or hole diameter (mm)", initial=2.0)
    extent_mm = forms.FloatField(label="Extent, diameter of the marker area (mm)", initial=200.0)
    marker = forms.ChoiceField(label="Plate markers", choices=[("bead", "Beads (dark)"), ("hole", "Holes (bright)")], required=False)
    near_height_mm = forms.FloatField(label="Near layer above the detector (mm)", initial=10.0, required=False)
    layer_gap_mm = forms.FloatField(label="Near to far layer gap (mm)", initial=70.0, required=False)
    far_pitch_mm = forms.FloatField(label="Far layer pitch (mm)", initial=25.0, required=False)
    far_offset_mm = forms.FloatField(label="Far layer offset (mm)", initial=5.0, required=False)
    size_ratio = forms.FloatField(label="Coding: larger bead size ratio", initial=1.75, required=False)
    code_fraction = forms.FloatField(label="Coding: fraction of larger beads", initial=0.15, required=False)

    def design(self, name: str | None = None) -> PhantomDesign:
        """The :class:`PhantomDesign` of the cleaned data (blank fields: the defaults);
        ``name`` replaces the form's name (the unsaved preview)."""
        values = {key: value for key, value in self.cleaned_data.items() if value not in (None, "")}
        if name is not None:
            values["name"] = name
        return PhantomDesign(**values)
