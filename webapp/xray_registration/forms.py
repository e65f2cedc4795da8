"""Forms of the registration and review pages."""

from __future__ import annotations

from django import forms

from webapp.xray_registration.models import Registration
from webapp.xray_registration.services import PRESETS


class PrepareForm(forms.Form):
    preset = forms.ChoiceField(choices=[(p, p) for p in PRESETS], initial="quick")


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[(Registration.Review.ACCEPTED, "Accept"), (Registration.Review.REJECTED, "Reject")]
    )
    comment = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class LandmarkForm(forms.Form):
    """A reviewer's 2D pick (pixels of the registered image) and its CT position (LPS mm)."""

    u_px = forms.FloatField(label="u (px)")
    v_px = forms.FloatField(label="v (px)")
    x_mm = forms.FloatField(label="x (L, mm)")
    y_mm = forms.FloatField(label="y (P, mm)")
    z_mm = forms.FloatField(label="z (S, mm)")


class DashboardFilterForm(forms.Form):
    patient = forms.IntegerField(required=False, min_value=1)
    status = forms.ChoiceField(required=False, choices=[("", "any"), *Registration.Status.choices])
    review = forms.ChoiceField(required=False, choices=[("", "any"), *Registration.Review.choices])
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
