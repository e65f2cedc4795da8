"""TOTP enrolment and verification pages (django-otp; the QR code is an SVG data URI)."""

from __future__ import annotations

from base64 import b32encode

import segno
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.core.reauth import authenticated_recently, mark_authenticated
from webapp.core.second_factor import signed_in_by_sso

DEVICE_NAME = "Authenticator app"


class CodeForm(forms.Form):
    code = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label="6-digit code",
        error_messages={"invalid": "Enter the 6-digit code your authenticator app shows."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


def _pending_device(user) -> TOTPDevice:
    """The user's unconfirmed device (made once, reused until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def _secret(device: TOTPDevice) -> str:
    return b32encode(device.bin_key).decode().rstrip("=")


@login_required
def enrol(request: HttpRequest) -> HttpResponse:
    """Shows the QR code and secret of a new device; a correct code confirms it.

    A user who already has a device must verify it first (the gate sends them there), so a
    stolen password alone cannot replace someone's second factor, and must have proved who
    they are recently (``webapp.core.reauth``) to replace it.
    """
    if signed_in_by_sso(request):
        messages.info(request, "Your identity provider handles your second factor.")
        return redirect("/")
    if user_has_device(request.user, confirmed=True):
        if not request.user.is_verified():
            return redirect("otp-verify")
        if not authenticated_recently(request):  # replacing a factor is destructive
            return redirect(f"{redirect('reauth').url}?{urlencode({'next': request.path})}")
    device = _pending_device(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["code"].strip()):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=request.user, confirmed=True).exclude(pk=device.pk).delete()
            otp_login(request, device)
            record(request, AuditEvent.Action.UPDATE, obj=device, detail="second factor enrolled")
            return redirect(_next_url(request))
        record(request, AuditEvent.Action.LOGIN_FAILED, detail="wrong second-factor code (enrolment)")
        form.add_error("code", "That code is not right. Check the time on your phone and try again.")
    qr = segno.make(device.config_url, error="m")
    return render(request, "core/otp_enrol.html", {
        "form": form,
        "qr_data_uri": qr.svg_data_uri(scale=4),
        "secret": _secret(device),
        "next": _next_url(request),
    })


@login_required
def verify(request: HttpRequest) -> HttpResponse:
    """Asks for the current code after a password sign-in; wrong codes are audited and
    slowed down (django-otp doubles the wait after each failure)."""
    devices = TOTPDevice.objects.filter(user=request.user, confirmed=True)
    if not devices.exists():
        return redirect("otp-enrol")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"].strip()
        device = next((d for d in devices if d.verify_token(code)), None)
        if device is not None:
            otp_login(request, device)
            mark_authenticated(request)
            record(request, AuditEvent.Action.LOGIN, obj=device, detail="second factor verified")
            return redirect(_next_url(request))
        record(request, AuditEvent.Action.LOGIN_FAILED, detail="wrong second-factor code")
        form.add_error("code", "That code is not right, or came too soon after a wrong one.")
    return render(request, "core/otp_verify.html", {"form": form, "next": _next_url(request)})
