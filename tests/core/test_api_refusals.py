"""The API answers 400 with the message for a refusal (bad input) and 500 without details
for anything else (a bug of ours is never reported as the user's mistake)."""

from __future__ import annotations

from geometry.rigid import TransformError
from webapp.core.api_errors import exception_handler


def test_a_refusal_is_a_400_with_its_message():
    response = exception_handler(TransformError("T_x_from_y is not rigid"), {})
    assert response.status_code == 400 and response.data == {"detail": "T_x_from_y is not rigid"}


def test_a_bare_value_error_is_our_bug_not_the_users():
    response = exception_handler(ValueError("could not convert string to float: 'abc'"), {})
    assert response.status_code == 500
    assert "abc" not in response.data["detail"]
