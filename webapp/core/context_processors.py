"""Template context shared by every page."""

from webapp.core.roles import CALIBRATION_ADMIN, REVIEWER, SURGEON, has_role, role_names


def roles(request):
    user = getattr(request, "user", None)
    return {
        "user_roles": role_names(user),
        "is_surgeon": has_role(user, SURGEON),
        "is_reviewer": has_role(user, REVIEWER),
        "is_calibration_admin": has_role(user, CALIBRATION_ADMIN),
    }
