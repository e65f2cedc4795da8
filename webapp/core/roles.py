"""Role names (Django groups) and role checks."""

from __future__ import annotations

SURGEON = "Surgeon"
REVIEWER = "Reviewer"
CALIBRATION_ADMIN = "CalibrationAdmin"
ALL_ROLES = (SURGEON, REVIEWER, CALIBRATION_ADMIN)


def has_role(user, role: str) -> bool:
    """True for site admins (superusers) and members of the group ``role``."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=role).exists()


def role_names(user) -> list[str]:
    if not getattr(user, "is_authenticated", False):
        return []
    names = list(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
    if user.is_superuser:
        names.append("Admin")
    return names
