"""Orchestrator settings: one file, every value from the environment with a safe default.

The embedded default (no environment at all) is SQLite, local-memory cache and local
API tokens, so `make run` works on a bare machine. Production sets DATABASE_URL,
REDIS_URL, SECRET_KEY, DEBUG=false and the OIDC_* variables (see .env.example).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_number(name, default, parse, kind):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}") from None


def env_int(name, default):
    return _env_number(name, default, int, "an integer")


def env_float(name, default):
    return _env_number(name, default, float, "a number")


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Off unless asked for: a bare `docker run` or gunicorn never serves debug pages or the development
# key; `make run` sets DEBUG=true for the local server.
DEBUG = env_bool("DEBUG", False)

# An insecure key is tolerated only for local development; production refuses to start without one.
_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_fsm",
    # The kernel: HTTP plumbing, identity, operations (no domain app is imported by them).
    "orchestrator.http",
    "orchestrator.identity",
    "orchestrator.ops",
    # The domain, in dependency order: audit knows no other app; transfer and dashboard compose them.
    "audit",
    "routing",
    "sessions.apps.AgentSessionsConfig",
    "notifications",
    "approvals",
    "transfer",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Under gunicorn (DEBUG=false) whitenoise serves the collected static files of the admin and
    # dashboard; with DEBUG on, runserver serves them from the apps.
    *([] if DEBUG else ["whitenoise.middleware.WhiteNoiseMiddleware"]),
    "orchestrator.http.tracing.TraceIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
WSGI_APPLICATION = "orchestrator.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # Off by default: the check is a `SELECT 1` round trip before every request's first
        # query (a third of a read's time, docs/benchmarks.md). Without it a connection that
        # died with a database restart fails one request per worker with a 503, then reconnects.
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server, the in-process scheduler and a
    # management command share the file without "database is locked" errors.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                # A dead or slow Redis must never fail a request: the cache is only a
                # fast path, the database is the source of truth.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `collectstatic` puts the files whitenoise serves with DEBUG=false (checked at start: ops.W001).
STATIC_ROOT = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))

LOGIN_URL = "/admin/login/"

# Request bodies above this size answer 413 (see orchestrator.http.problems).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024)

# --- Hardening: input and resource limits (docs/api.md "Input limits") ----------------------
# Deepest nesting of any JSON document accepted (a request body, an imported record); deeper is 400.
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 32)
# Live audit streams one principal may hold open at once (each holds a server thread); past it, 429.
AUDIT_STREAM_MAX_PER_PRINCIPAL = env_int("AUDIT_STREAM_MAX_PER_PRINCIPAL", 4)

# --- Security (production: DEBUG=false) -------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orchestrator.identity.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["orchestrator.identity.authentication.IsAgentOrStaff"],
    "DEFAULT_RENDERER_CLASSES": ["orchestrator.http.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["orchestrator.http.renderers.FastJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "orchestrator.http.renderers.FastContentNegotiation",
    "EXCEPTION_HANDLER": "orchestrator.http.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Orchestrator API",
    "DESCRIPTION": "Control plane for an organisation of AI agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Separate request components carry the input constraints (minLength, required) that clients must meet.
    "COMPONENT_SPLIT_REQUEST": True,
    # Three models have a "status" choice set; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "sessions.models.SessionStatus",
        "TaskStatusEnum": "routing.models.TaskStatus",
        "ApprovalStatusEnum": "approvals.models.ApprovalStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orchestrator.http.schema.add_problem_responses",
    ],
}

# Local API tokens are looked up once and then kept in process memory this long,
# so a revoked token stops working within this many seconds.
API_TOKEN_CACHE_SECONDS = env_int("API_TOKEN_CACHE_SECONDS", 30)

# --- Domain -----------------------------------------------------------------------------
# The roles agents may work in; routing to any other role is refused (400).
ORCHESTRATOR_ROLES = env_list("ORCHESTRATOR_ROLES", "finance,manager,engineering,marketing,support,operations")
SESSION_RETENTION_DAYS = env_int("SESSION_RETENTION_DAYS", 7)
APPROVAL_TIMEOUT_SECONDS = env_int("APPROVAL_TIMEOUT_SECONDS", 3600)
IDEMPOTENCY_ENABLED = env_bool("IDEMPOTENCY_ENABLED", True)
IDEMPOTENCY_REQUIRED = env_bool("IDEMPOTENCY_REQUIRED", False)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 86400)

# Live audit stream (docs/audit.md): a stream ends after this long and the client resumes with
# Last-Event-ID, so no worker thread is held forever; without a Redis wake-up it polls this often.
AUDIT_STREAM_MAX_SECONDS = env_int("AUDIT_STREAM_MAX_SECONDS", 300)
AUDIT_STREAM_POLL_SECONDS = env_float("AUDIT_STREAM_POLL_SECONDS", 1.0)
AUDIT_STREAM_HEARTBEAT_SECONDS = env_float("AUDIT_STREAM_HEARTBEAT_SECONDS", 15.0)

# --- Celery (periodic jobs; docs/operations.md) -------------------------------------------
# Production: the Redis broker, N workers, exactly one beat. Without a broker (the embedded
# default) `make run` drives the same schedule with `manage.py run_jobs`, and .delay() runs inline.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
# Empty: results are not stored; the jobs report through logs and the audit log.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
# Acked after they finish, so a worker killed mid-run leaves its job queued for another worker;
# every job is safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A job left unacknowledged this long (its worker vanished) is delivered again.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600)}
CELERY_BEAT_SCHEDULE = {
    "expire_sessions": {
        "task": "sessions.jobs.expire_sessions",
        "schedule": env_int("EXPIRE_SESSIONS_INTERVAL_SECONDS", 15 * 60),
    },
    "expire_approvals": {
        "task": "approvals.jobs.expire_approvals",
        "schedule": env_int("EXPIRE_APPROVALS_INTERVAL_SECONDS", 60),
    },
    "purge_idempotency_keys": {
        "task": "orchestrator.http.jobs.purge_idempotency_keys",
        "schedule": env_int("PURGE_IDEMPOTENCY_KEYS_INTERVAL_SECONDS", 60 * 60),
    },
    "seal_audit": {
        "task": "audit.jobs.seal_audit",
        "schedule": env_int("SEAL_AUDIT_INTERVAL_SECONDS", 60),
    },
}
# Sessions expired per transaction by expire_sessions: short row locks, bounded memory.
SESSION_EXPIRY_BATCH_SIZE = env_int("SESSION_EXPIRY_BATCH_SIZE", 10_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- OIDC (agents' JWTs and humans' admin login); empty issuer = local tokens and accounts only.
# docs/auth.md explains each value and how to set them for Keycloak.
OIDC_ISSUER = env_str("OIDC_ISSUER")
OIDC_AUDIENCE = env_str("OIDC_AUDIENCE", "orchestrator")
# Dotted path into the token's claims; a list value (Keycloak's realm_access.roles) gives its first known role.
OIDC_ROLE_CLAIM = env_str("OIDC_ROLE_CLAIM", "role")
# Staff when the claim at this dotted path equals, or is a list containing, OIDC_STAFF_VALUE.
OIDC_STAFF_CLAIM = env_str("OIDC_STAFF_CLAIM", "groups")
OIDC_STAFF_VALUE = env_str("OIDC_STAFF_VALUE", "orchestrator-staff")
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 5)
OIDC_LEEWAY_SECONDS = env_int("OIDC_LEEWAY_SECONDS", 30)
OIDC_JWKS_CACHE_SECONDS = env_int("OIDC_JWKS_CACHE_SECONDS", 3600)
# An unknown key refetches the JWKS at most this often, so forged tokens cannot flood the provider.
OIDC_JWKS_MIN_REFETCH_SECONDS = env_int("OIDC_JWKS_MIN_REFETCH_SECONDS", 30)
# Endpoints come from OIDC_ISSUER/.well-known/openid-configuration unless set here.
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
# Human login (mozilla-django-oidc): on when both the issuer and this confidential client are set.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile")
OIDC_AUTHENTICATE_CLASS = "orchestrator.identity.oidc_login.AuthenticationRequestView"
OIDC_STAFF_IS_SUPERUSER = env_bool("OIDC_STAFF_IS_SUPERUSER", True)
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ISSUER and OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.insert(0, "orchestrator.identity.oidc_login.OIDCBackend")
