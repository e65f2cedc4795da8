"""Browser-test fixtures (registered for the whole suite by tests/conftest.py): Playwright driving Debian's Chromium against pytest-django's
live_server.

Fixtures for other areas to reuse:

* ``browser`` (session): a headless Chromium; the test is skipped when the binary
  (``$PLAYWRIGHT_CHROMIUM``, default ``/usr/bin/chromium``) or Playwright is missing.
* ``login_page``: factory ``login_page(user) -> Page`` of a fresh context already logged
  in as ``user`` on ``live_server`` (session cookie, no login form round trip); console
  errors are collected on ``page.console_errors``.
* ``page_url``: factory ``page_url(name, *args) -> str``, the live-server URL of a named
  route.
* ``built_frontend``: skips unless ``npm run build`` produced static/dist/ct_viewer.js.
* ``canvas_pixels(page, selector) -> np.ndarray``: RGBA pixels (H, W, 4) of the first
  canvas inside ``selector``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run
# inside one unless told it is safe (tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "static" / "dist"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebGL through SwiftShader (software): Cornerstone3D renders with WebGL2.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]


def chromium_executable() -> str:
    return os.environ.get("PLAYWRIGHT_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    executable = chromium_executable()
    if not Path(executable).exists():
        pytest.skip(f"Chromium not installed at {executable} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (python) is not installed")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def built_frontend() -> Path:
    bundle = DIST / "ct_viewer.js"
    if not bundle.exists():
        pytest.skip("front-end bundle not built: run `npm ci && npm run build`")
    return DIST


@pytest.fixture
def page_url(live_server):
    from django.urls import reverse

    def url(name: str, *args) -> str:
        return live_server.url + reverse(name, args=args)

    return url


@pytest.fixture
def login_page(browser, live_server, transactional_db):
    """Factory: a Playwright page of a new browser context logged in as ``user``."""
    from django.conf import settings
    from django.test import Client

    contexts = []

    def login(user, *, viewport: dict | None = None):
        client = Client()
        client.force_login(user)
        session_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        context = browser.new_context(viewport=viewport or {"width": 1366, "height": 900})
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": session_cookie,
                    "url": live_server.url,
                }
            ]
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.console_errors = []
        page.on(
            "console",
            lambda message: (
                page.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        return page

    yield login
    for context in contexts:
        context.close()


def canvas_pixels(page, selector: str) -> np.ndarray:
    """RGBA pixels (H, W, 4) uint8 of the first <canvas> inside ``selector``."""
    import cv2

    data_url = page.eval_on_selector(
        selector, "(root) => root.querySelector('canvas').toDataURL('image/png')"
    )
    encoded = data_url.split(",", 1)[1]
    png = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8)
    image = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise AssertionError(f"canvas of {selector} did not decode as PNG")
    if image.ndim == 2:
        image = np.dstack([image, image, image, np.full_like(image, 255)])
    elif image.shape[2] == 3:
        image = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    return image[..., [2, 1, 0, 3]]  # BGRA -> RGBA
