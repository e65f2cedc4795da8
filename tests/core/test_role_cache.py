"""Roles are read once per user object (one query, not one per check); a changed group
counts from the next request, or at once after ``forget_roles``."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse


def test_role_checks_share_one_query(make_user):
    from webapp.core.roles import CALIBRATION_ADMIN, REVIEWER, SURGEON, has_role, role_names

    user = User.objects.get(pk=make_user("cached", SURGEON).pk)
    with CaptureQueriesContext(connection) as queries:
        checks = [has_role(user, SURGEON), has_role(user, REVIEWER),
                  has_role(user, CALIBRATION_ADMIN), role_names(user)]
    assert checks == [True, False, False, [SURGEON]]
    assert len(queries) == 1


def test_a_group_change_counts_for_a_fresh_user_object_and_after_forget(make_user):
    from webapp.core.roles import REVIEWER, forget_roles, has_role

    user = make_user("changing")
    assert not has_role(user, REVIEWER)
    user.groups.add(Group.objects.get_or_create(name=REVIEWER)[0])
    assert has_role(User.objects.get(pk=user.pk), REVIEWER)  # the next request's user
    forget_roles(user)
    assert has_role(user, REVIEWER)


def test_the_next_request_sees_a_removed_role(client, make_user, team_a):
    from webapp.core.roles import SURGEON

    user = make_user("demoted", SURGEON, team=team_a)
    client.force_login(user)
    url = reverse("records:patient-create")
    assert client.get(url).status_code == 200
    user.groups.clear()
    assert client.get(url).status_code == 403
