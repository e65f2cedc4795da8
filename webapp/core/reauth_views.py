"""The re-authentication page: the password, or the current TOTP code, again."""

from __future__ import annotations

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp.plugins.otp_totp.models import TOTPDevice

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.core.reauth import mark_authenticated
from webapp.core.second_factor import signed_in_by_sso


class ReauthForm(forms.Form):
    secret = forms.CharField(
        label="Your password, or the 6-digit code of your authenticator app",
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    ok = target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if ok else "/"


def _code_matches(user, text: str) -> bool:
    code = text.strip()
    if not (len(code) == 6 and code.isdigit()):
        return False
    return any(d.verify_token(code) for d in TOTPDevice.objects.filter(user=user, confirmed=True))


@login_required
def reauth(request: HttpRequest) -> HttpResponse:
    """Password (counted and audited by the sign-in limits, like any failed sign-in) or TOTP
    code; single sign-on users go back through their provider."""
    next_url = _safe_next(request)
    if signed_in_by_sso(request):
        return HttpResponseRedirect(f"{redirect('oidc_authentication_init').url}?{urlencode({'next': next_url})}")
    form = ReauthForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        secret = form.cleaned_data["secret"]
        user = request.user
        by_code = _code_matches(user, secret)
        if by_code or authenticate(request, username=user.get_username(), password=secret) == user:
            mark_authenticated(request)
            record(request, AuditEvent.Action.LOGIN, detail="re-authenticated")
            return redirect(next_url)
        form.add_error("secret", "That is not right. Try again.")
    return render(request, "core/reauth.html", {"form": form, "next": next_url})
