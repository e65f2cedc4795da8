"""The second-factor pages in a browser: a staff member is sent to enrolment, sees the QR
code and the secret, is refused a wrong code and confirmed by the right one (then reaches
the page asked for); later a sign-in asks for the code on the verification page. No
console errors (a Content-Security-Policy violation would be one)."""

from __future__ import annotations

import re

import pytest

from tests.core.test_second_factor import code_for, device_secret

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("real_second_factor")]
THROTTLE_MS = 1500  # django-otp refuses any code for 1 s after one wrong code


def _wrong(code: str) -> str:
    return f"{(int(code) + 500_000) % 1_000_000:06d}"


def test_staff_enrols_with_the_qr_page_and_reaches_the_page_asked_for(
    login_page, page_url, make_user
):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    staff = make_user("staffer")
    staff.is_staff = True
    staff.save()
    page = login_page(staff)
    page.goto(page_url("records:patient-list"))
    assert page.url.startswith(page_url("otp-enrol"))
    page.wait_for_function(
        "() => { const img = document.querySelector('img[alt^=\"QR code\"]');"
        " return img && img.complete && img.naturalWidth > 0; }"
    )
    secret = page.text_content("#totp-secret").strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    assert device_secret(device) == secret

    page.fill("input[name=code]", _wrong(code_for(secret)))
    page.click("button[type=submit]:has-text('Confirm')")
    page.wait_for_selector("text=That code is not right")
    assert not TOTPDevice.objects.filter(user=staff, confirmed=True).exists()

    page.wait_for_timeout(THROTTLE_MS)
    page.fill("input[name=code]", code_for(secret))
    page.click("button[type=submit]:has-text('Confirm')")
    page.wait_for_url(page_url("records:patient-list"))
    assert TOTPDevice.objects.filter(user=staff, confirmed=True).count() == 1
    assert page.console_errors == []


def test_a_new_sign_in_asks_for_the_code_on_the_verification_page(
    login_page, page_url, make_user
):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from webapp.core.models import AuditEvent

    staff = make_user("staffer")
    staff.is_staff = True
    staff.save()
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    secret = device_secret(device)
    page = login_page(staff)  # password done, second factor not yet
    page.goto(page_url("records:patient-list"))
    assert page.url.startswith(page_url("otp-verify"))
    assert page.locator("input[name=code]").get_attribute("autocomplete") == "one-time-code"

    page.fill("input[name=code]", _wrong(code_for(secret)))
    page.click("button[type=submit]:has-text('Verify')")
    page.wait_for_selector("text=That code is not right")
    assert page.url.startswith(page_url("otp-verify"))

    page.wait_for_timeout(THROTTLE_MS)
    page.fill("input[name=code]", code_for(secret))
    page.click("button[type=submit]:has-text('Verify')")
    page.wait_for_url(page_url("records:patient-list"))
    actions = list(
        AuditEvent.objects.filter(username="staffer").order_by("id").values_list("action", "detail")
    )
    assert ("login_failed", "wrong second-factor code") in actions
    assert ("login", "second factor verified") in actions
    assert page.console_errors == []
