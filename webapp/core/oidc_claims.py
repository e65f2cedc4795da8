"""Roles (Django groups) and care teams of a single sign-on user, from the provider's claims.

``ORTHOFUSE_OIDC_ROLE_MAP`` maps claim values to role names (``ortho-surgeons=Surgeon``);
without it a claim value equal to a role name is that role. ``ORTHOFUSE_OIDC_TEAM_MAP`` maps
claim values to care-team names (teams made if missing); without it a claim value equal to an
existing team's name is that team. The provider is authoritative: at each sign-in the user's
roles, and their memberships of the teams it manages (the mapped teams, or every team when no
map is set), are set to what the claims say. Staff and superuser flags never come from claims.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group

from webapp.core.roles import ALL_ROLES, forget_roles


def claim_values(claims: dict, name: str) -> list[str]:
    """A claim as a list of strings: a list, or one string (comma or space separated)."""
    value = claims.get(name) if name else None
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, list | tuple):
        return [str(item) for item in value if isinstance(item, str | int)]
    return []


def mapped_roles(claims: dict) -> set[str]:
    values = claim_values(claims, settings.ORTHOFUSE_OIDC_ROLES_CLAIM)
    mapping: dict[str, str] = settings.ORTHOFUSE_OIDC_ROLE_MAP
    if mapping:
        return {mapping[v] for v in values if v in mapping and mapping[v] in ALL_ROLES}
    return {v for v in values if v in ALL_ROLES}


def sync_roles(user, claims: dict) -> None:
    wanted = mapped_roles(claims)
    for role in ALL_ROLES:
        if role in wanted:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
        else:
            user.groups.remove(*Group.objects.filter(name=role))
    forget_roles(user)


def sync_teams(user, claims: dict) -> None:
    from webapp.records.models import CareTeam

    values = claim_values(claims, settings.ORTHOFUSE_OIDC_TEAMS_CLAIM)
    mapping: dict[str, str] = settings.ORTHOFUSE_OIDC_TEAM_MAP
    if mapping:
        managed = CareTeam.objects.filter(name__in=set(mapping.values()))
        wanted = {mapping[v] for v in values if v in mapping}
        for name in wanted:
            CareTeam.objects.get_or_create(name=name)
    else:
        managed = CareTeam.objects.all()
        wanted = set(values)
    for team in managed:
        if team.name in wanted:
            team.members.add(user)
        else:
            team.members.remove(user)
