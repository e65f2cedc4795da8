"""Failed sign-in limits (django-axes): a per-user limit and a larger per-address limit.

Shared operating-room workstations put several staff behind one address, so an address may
fail more often than one user name before it is locked out. Axes compares one count with one
limit; this handler scales the per-address count onto the per-user limit.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse


def _sum_failures(attempts) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class PerUserAndAddressHandler(AxesDatabaseHandler):
    """Locks a user name after ``AXES_FAILURE_LIMIT`` failures and an address after
    ``ORTHOFUSE_LOGIN_FAILURES_PER_ADDRESS`` failures (0: never) within the cool-off time
    (``AXES_LOCKOUT_PARAMETERS`` is ``["username", "ip_address"]``, in that order)."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        by_user, by_address = self.get_user_attempts(request, credentials)
        per_user = int(settings.AXES_FAILURE_LIMIT)
        per_address = int(settings.ORTHOFUSE_LOGIN_FAILURES_PER_ADDRESS)
        if per_address <= 0:  # 0 turns the per-address limit off
            return _sum_failures(by_user)
        # floor(a * u / p) >= u exactly when a >= p: the address locks at its own limit
        scaled = _sum_failures(by_address) * per_user // per_address
        return max(_sum_failures(by_user), scaled)


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """429 with one line saying what happened and when to try again (no account detail)."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return HttpResponse(
        f"Too many failed sign-ins from this user name or computer: try again in {minutes} "
        "minutes, or ask an administrator to unlock it.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
