"""Role names (Django groups) and role checks."""

from __future__ import annotations

SURGEON = "Surgeon"
REVIEWER = "Reviewer"
CALIBRATION_ADMIN = "CalibrationAdmin"
ALL_ROLES = (SURGEON, REVIEWER, CALIBRATION_ADMIN)


ROLE_CACHE_ATTRIBUTE = "_orthofuse_role_cache"


def _group_roles(user) -> frozenset[str]:
    """The roles of ``user``'s groups, read once per user object: the request's user is
    loaded afresh for every request, so a change of groups counts from the next request
    (as Django's own permission cache on the user object does)."""
    cached = getattr(user, ROLE_CACHE_ATTRIBUTE, None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        setattr(user, ROLE_CACHE_ATTRIBUTE, cached)
    return cached


def forget_roles(user) -> None:
    """Drop the roles read for ``user`` (after changing its groups on the same object)."""
    user.__dict__.pop(ROLE_CACHE_ATTRIBUTE, None)


def has_role(user, role: str) -> bool:
    """True for site admins (superusers) and members of the group ``role``."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return role in _group_roles(user)


def role_names(user) -> list[str]:
    if not getattr(user, "is_authenticated", False):
        return []
    names = [role for role in ALL_ROLES if role in _group_roles(user)]
    if user.is_superuser:
        names.append("Admin")
    return names
