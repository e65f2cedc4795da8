"""Admin deletions (and other destructive admin actions) ask for a recent proof of identity
like every other destructive action (:mod:`webapp.core.reauth`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from webapp.core.reauth import ask_again


class RecentAuthAdminMixin:
    """Mix into a ModelAdmin: the delete page, and the bulk actions named in
    ``reauth_actions``, first ask for re-authentication when the last proof is stale."""

    reauth_actions: frozenset[str] = frozenset({"delete_selected"})

    def delete_view(self, request: HttpRequest, object_id, extra_context=None) -> HttpResponse:
        return ask_again(request) or super().delete_view(request, object_id, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if request.method == "POST" and request.POST.get("action") in self.reauth_actions:
            asked = ask_again(request)
            if asked is not None:
                return asked
        return super().changelist_view(request, extra_context)
