"""The page where a user creates (shown once) and revokes their API tokens, audited."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from webapp.core.api_tokens import create_token, max_days
from webapp.core.audit import record
from webapp.core.models import ApiToken, AuditEvent
from webapp.core.reauth import recent_auth_required


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name (the machine it is for)")
    days = forms.IntegerField(min_value=1, label="Valid for (days)", initial=90)

    def clean_days(self) -> int:
        days = self.cleaned_data["days"]
        if days > max_days():
            raise forms.ValidationError(f"A token lasts at most {max_days()} days.")
        return days


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    return _render(request, TokenForm())


def _render(request: HttpRequest, form: TokenForm, new_token: str = "") -> HttpResponse:
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "core/api_tokens.html", {
        "form": form, "tokens": tokens, "new_token": new_token, "now": timezone.now(),
    })


@login_required
@require_POST
@recent_auth_required
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render(request, form)
    row, token = create_token(request.user, form.cleaned_data["name"], form.cleaned_data["days"])
    record(
        request, AuditEvent.Action.CREATE, obj=row,
        detail=f"API token {row.prefix}… '{row.name}' created, expires {row.expires_at:%Y-%m-%d %H:%M}",
    )
    return _render(request, TokenForm(), new_token=token)  # no-store: SecurityHeadersMiddleware


@login_required
@require_POST
@recent_auth_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(ApiToken, pk=pk, user=request.user)  # another user's: 404
    if row.revoked_at is None:
        ApiToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
        record(request, AuditEvent.Action.UPDATE, obj=row, detail=f"API token {row.prefix}… revoked")
    return redirect("api-tokens")
