"""Django settings for OrthoFuse, all read from the environment (see README, Configuration).

Unset variables give production behaviour: DEBUG off, and no start without
``DJANGO_SECRET_KEY``. Development (``DJANGO_DEBUG=1``, set by the Makefile's dev targets
and by pytest runs) needs no server: SQLite, a filesystem Celery broker, media under
``var/``. Production sets ``DJANGO_SECRET_KEY``, ``DJANGO_ALLOWED_HOSTS``, ``DATABASE_URL``
and ``CELERY_BROKER_URL``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from webapp.core.claim_map import parse_map
from webapp.env import env_bool, env_int, env_list, env_str, test_run_defaults

test_run_defaults()  # a pytest run (and the manage.py processes it starts) is development

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ORTHOFUSE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# DEBUG is off unless DJANGO_DEBUG says otherwise (the Makefile's dev targets set it).
DEBUG = env_bool("DJANGO_DEBUG", False)
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-in-production-0123456789"
# Without DJANGO_SECRET_KEY the dev key stands in, so command-line tools (render_drr,
# register_xray, ...) run with no variables set; with DEBUG off the web server refuses to
# start on it (webapp.core.startup) and `check --deploy` reports it.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "mozilla_django_oidc",
    "axes",  # before webapp.core: its failed-login receiver runs first (see core.signals)
    "webapp.core",
    "webapp.records",
    "webapp.jobs",
    "webapp.planning",
    "webapp.review",
    "webapp.dicomnet",
    "webapp.demo",
    "webapp.calibration",
    "webapp.xray_registration",
    "webapp.operating",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified() (second factor)
    "django.contrib.messages.middleware.MessageMiddleware",
    "webapp.core.idle_timeout.IdleTimeoutMiddleware",
    "webapp.core.second_factor.SecondFactorMiddleware",  # staff: TOTP before any page
    "webapp.core.security_headers.SecurityHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.core.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'orthofuse.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file-backed test database lets a Celery worker thread see the test's rows.
    # One file per test process, so parallel test runs never share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_orthofuse_{os.getpid()}.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses locked-out user names and addresses
    "django.contrib.auth.backends.ModelBackend",
    "webapp.core.oidc.OIDCBackend",  # answers only the single sign-on callback, when configured
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "records:patient-list"
LOGOUT_REDIRECT_URL = "login"

# --- Single sign-on (OpenID Connect; webapp.core.oidc). Off unless a client id and either the
# issuer (endpoints by discovery) or all four endpoints are set.
ORTHOFUSE_OIDC_ISSUER = env_str("ORTHOFUSE_OIDC_ISSUER")
ORTHOFUSE_OIDC_PROVIDER_NAME = env_str("ORTHOFUSE_OIDC_PROVIDER_NAME", "single sign-on")
OIDC_RP_CLIENT_ID = env_str("ORTHOFUSE_OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("ORTHOFUSE_OIDC_CLIENT_SECRET")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("ORTHOFUSE_OIDC_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("ORTHOFUSE_OIDC_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("ORTHOFUSE_OIDC_USERINFO_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("ORTHOFUSE_OIDC_JWKS_ENDPOINT")
OIDC_RP_SIGN_ALGO = env_str("ORTHOFUSE_OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("ORTHOFUSE_OIDC_SCOPES", "openid email profile")
OIDC_TIMEOUT = 10
OIDC_USE_PKCE = True  # the code is bound to this browser's sign-in (RFC 9700), with the nonce
LOGIN_REDIRECT_URL_FAILURE = "/login/?sso=failed"
# Second factor (webapp.core.second_factor): TOTP for local staff and calibration admins.
OTP_TOTP_ISSUER = "OrthoFuse"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a device's secret or QR code
# Destructive actions ask for the password or a TOTP code again after this many minutes
# (webapp.core.reauth); API tokens (webapp.core.api_tokens) last at most this many days.
ORTHOFUSE_REAUTH_MINUTES = env_int("ORTHOFUSE_REAUTH_MINUTES", 5)
ORTHOFUSE_API_TOKEN_MAX_DAYS = env_int("ORTHOFUSE_API_TOKEN_MAX_DAYS", 365)
# Claims holding role and team values, and maps "claim-value=Name,..." (empty: values are names)
ORTHOFUSE_OIDC_ROLES_CLAIM = env_str("ORTHOFUSE_OIDC_ROLES_CLAIM", "roles")
ORTHOFUSE_OIDC_TEAMS_CLAIM = env_str("ORTHOFUSE_OIDC_TEAMS_CLAIM", "teams")
ORTHOFUSE_OIDC_ROLE_MAP = parse_map(env_str("ORTHOFUSE_OIDC_ROLE_MAP"))
ORTHOFUSE_OIDC_TEAM_MAP = parse_map(env_str("ORTHOFUSE_OIDC_TEAM_MAP"))

# Failed sign-ins (site, admin): a user name is locked after AXES_FAILURE_LIMIT failures, an
# address (a shared workstation) after ORTHOFUSE_LOGIN_FAILURES_PER_ADDRESS, for the cool-off.
AXES_FAILURE_LIMIT = env_int("ORTHOFUSE_LOGIN_FAILURES_PER_USER", 5)
ORTHOFUSE_LOGIN_FAILURES_PER_ADDRESS = env_int("ORTHOFUSE_LOGIN_FAILURES_PER_ADDRESS", 20)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ORTHOFUSE_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HANDLER = "webapp.core.login_limits.PerUserAndAddressHandler"
AXES_LOCKOUT_CALLABLE = "webapp.core.login_limits.lockout_response"
AXES_CLIENT_IP_CALLABLE = "webapp.core.audit.client_ip"  # the address the audit trail records
# Reverse proxies in front of the site (each appends to X-Forwarded-For); 0 = none.
ORTHOFUSE_TRUSTED_PROXIES = env_int("ORTHOFUSE_TRUSTED_PROXIES", 0)
AXES_RESET_ON_SUCCESS = True
# attempts during a lockout are refused unread: not counted, not audited (no flooding)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit trail
AXES_VERBOSE = False  # no start-up line: commands keep stderr to their one-line messages

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Static files: the viewer bundle is built by esbuild into static/dist.
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing
MEDIA_URL = "media/"  # never served directly: downloads go through audited views
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media")))

_S3_BUCKET = env_str("ORTHOFUSE_S3_BUCKET")
STORAGES = {
    "default": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": _S3_BUCKET,
                "endpoint_url": env_str("ORTHOFUSE_S3_ENDPOINT_URL") or None,
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
            },
        }
        if _S3_BUCKET
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_MIMETYPES = {".wasm": "application/wasm", ".mjs": "text/javascript"}
# Development (make run under gunicorn) serves static files straight from the sources;
# production serves what collectstatic gathered.
WHITENOISE_USE_FINDERS = DEBUG

# Upload limits (bytes). A CT series zip can be large; single requests are bounded.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("ORTHOFUSE_MAX_UPLOAD_FILES", 2000)
ORTHOFUSE_MAX_UPLOAD_BYTES = env_int("ORTHOFUSE_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024)
ORTHOFUSE_MAX_VOXELS = env_int("ORTHOFUSE_MAX_VOXELS", 1024 * 1024 * 1024)
# Memory one CT import may need (estimated from declared sizes before any voxel is read).
ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES = env_int("ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES", 6 * 1024**3)
ORTHOFUSE_STAGING_DIR = env_str("ORTHOFUSE_STAGING_DIR", str(VAR_DIR / "staging"))
ORTHOFUSE_SHARED_DATA = env_str("ORTHOFUSE_SHARED_DATA", str(BASE_DIR.parent / "shared" / "data"))

# Celery: the Job row is the source of truth; messages carry only job ids.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
ORTHOFUSE_BROKER_VISIBILITY_TIMEOUT_S = env_int("ORTHOFUSE_BROKER_VISIBILITY_TIMEOUT_S", 12 * 3600)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _BROKER_DIR = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "out"),
        "data_folder_out": str(_BROKER_DIR / "out"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Longer than the longest job's hard time limit (training: 11 h + 60 s), so a broker that
    # redelivers unacknowledged messages (Redis) never redelivers a job that is still running;
    # a worker that dies is covered sooner by recover_stale_jobs (heartbeats).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": ORTHOFUSE_BROKER_VISIBILITY_TIMEOUT_S}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Job liveness (seconds): heartbeat period, silence after which a running job is
# re-queued or failed, and the least time between two progress writes.
ORTHOFUSE_JOB_HEARTBEAT_S = float(env_str("ORTHOFUSE_JOB_HEARTBEAT_S", "10"))
ORTHOFUSE_JOB_STALE_AFTER_S = float(env_str("ORTHOFUSE_JOB_STALE_AFTER_S", "120"))
ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S = float(env_str("ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S", "0.25"))
# Threads torch uses in each worker process (set by webapp.celery at process start): on a
# machine of at most 2 cores 1, so the web server keeps a core; else all cores but one.
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
ORTHOFUSE_WORKER_TORCH_THREADS = env_int("ORTHOFUSE_WORKER_TORCH_THREADS", 1 if _CORES <= 2 else _CORES - 1)
# The care-team rule that decides whose jobs a user sees (jobs imports no domain app).
JOB_PATIENT_SCOPE = "webapp.records.access.scope"

# Security: production values come from the environment (check --deploy clean).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Sessions end when the browser closes, after ORTHOFUSE_SESSION_IDLE_MINUTES without activity
# (webapp.core.idle_timeout), and at the latest DJANGO_SESSION_COOKIE_AGE seconds after sign-in.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
ORTHOFUSE_SESSION_IDLE_MINUTES = env_int("ORTHOFUSE_SESSION_IDLE_MINUTES", 20)
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_COOKIE_AGE", 12 * 3600)
# Scripts only from this origin ('wasm-unsafe-eval' lets the CT viewer compile its
# WebAssembly codecs, which runs no JavaScript eval); Plotly writes inline styles.
ORTHOFUSE_CSP = env_str(
    "ORTHOFUSE_CSP",
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)
ORTHOFUSE_PERMISSIONS_POLICY = env_str(
    "ORTHOFUSE_PERMISSIONS_POLICY",
    "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # no HTTP Basic: a password on every request, and failures escape the sign-in limits
        "rest_framework.authentication.SessionAuthentication",
        # machines: per-user tokens with expiry (webapp.core.api_tokens)
        "webapp.core.api_tokens.ApiTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "webapp.core.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OrthoFuse API",
    "DESCRIPTION": "Patients, CT studies, X-rays, calibration, registration and jobs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
}

# --- DICOM network (webapp.dicomnet: manage.py dicom_listener; docs/CONVENTIONS.md)
# Listening address, port and AE title; an empty calling-AE list accepts any peer.
ORTHOFUSE_DICOM_HOST = env_str("ORTHOFUSE_DICOM_HOST", "127.0.0.1")
ORTHOFUSE_DICOM_PORT = env_int("ORTHOFUSE_DICOM_PORT", 11112)
ORTHOFUSE_DICOM_AE_TITLE = env_str("ORTHOFUSE_DICOM_AE_TITLE", "ORTHOFUSE")
ORTHOFUSE_DICOM_ALLOWED_CALLING_AE = env_list("ORTHOFUSE_DICOM_ALLOWED_CALLING_AE", [])
# New patients (an unknown PatientID) are created in this care team (made if missing).
ORTHOFUSE_DICOM_CARE_TEAM = env_str("ORTHOFUSE_DICOM_CARE_TEAM", "DICOM inbox")
# A CT series is complete after this many seconds without a new instance.
ORTHOFUSE_DICOM_QUIET_S = float(env_str("ORTHOFUSE_DICOM_QUIET_S", "10"))
# Multi-frame X-ray (cine): "last" frame only, or "all" frames as separate images.
ORTHOFUSE_DICOM_MULTIFRAME = env_str("ORTHOFUSE_DICOM_MULTIFRAME", "last")
# Received CT instances wait here, one folder per series, until the series is complete.
ORTHOFUSE_DICOM_STAGING_DIR = env_str("ORTHOFUSE_DICOM_STAGING_DIR", str(VAR_DIR / "dicom-staging"))
# PACS endpoints results are sent to and CT studies pulled from: a comma list of AE@host:port
# (DIMSE) and DICOMweb base URLs (http(s)://host:port/dicom-web).
ORTHOFUSE_PACS = env_list("ORTHOFUSE_PACS", [])
# A send to one PACS is tried this many times, waiting 2, 4, ... times the delay between tries.
ORTHOFUSE_PACS_ATTEMPTS = env_int("ORTHOFUSE_PACS_ATTEMPTS", 3)
ORTHOFUSE_PACS_RETRY_DELAY_S = float(env_str("ORTHOFUSE_PACS_RETRY_DELAY_S", "2"))
# How a DIMSE PACS is pulled from: "get" (C-GET) or "move" (C-MOVE to our listener, which
# must run and be known to the PACS by ORTHOFUSE_DICOM_AE_TITLE).
ORTHOFUSE_PACS_RETRIEVE = env_str("ORTHOFUSE_PACS_RETRIEVE", "get")
