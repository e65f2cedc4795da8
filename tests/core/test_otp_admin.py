"""The admin lists second-factor devices (to remove a lost phone's) but never their secrets."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice


def test_the_admin_never_shows_a_device_secret(admin_client, db):
    staff = User.objects.create_user("staffer", password="correct-horse-battery-9", is_staff=True)
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    page = admin_client.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk]))
    assert page.status_code == 200 and "phone" in page.content.decode()
    assert device.key not in page.content.decode()
    listing = admin_client.get(reverse("admin:otp_totp_totpdevice_changelist")).content.decode()
    assert "qrcode" not in listing.lower()
