"""Orchestrator settings: one file, every value from the environment with a safe default.

The embedded default (no environment at all) is SQLite, local-memory cache and local
API tokens, so `make run` works on a bare machine. Production sets DATABASE_URL,
REDIS_URL, SECRET_KEY, DEBUG=false and the OIDC_* variables (see .env.example).
"""

import datetime
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orchestrator.telemetry.bind import parse_bind
from orchestrator.telemetry.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    word = value.strip().lower()
    # A typo ("flase") would otherwise read as false and switch something off without a word.
    if word not in _TRUE + _FALSE:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(_TRUE + _FALSE)}; got {value!r}")
    return word in _TRUE


def _env_number(name, default, parse, kind, minimum):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = parse(value)
        # nan and inf parse as floats, and an integer past a float's range cannot be compared with one.
        finite = math.isfinite(number)
    except (ValueError, OverflowError):
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}") from None
    # A bound below which the setting means nothing (a batch of 0 that delivered nothing and reported
    # success, a timeout of 0) is refused at start, naming it.
    if not finite or (minimum is not None and number < minimum):
        bound = f" of at least {minimum}" if minimum is not None else ""
        raise ImproperlyConfigured(
            f"{name} must be a finite {kind.removeprefix('an ').removeprefix('a ')}{bound}, got {value!r}"
        )
    return number


def env_int(name, default, *, minimum=None):
    return _env_number(name, default, int, "an integer", minimum)


def env_float(name, default, *, minimum=None):
    return _env_number(name, default, float, "a number", minimum)


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
    "orchestrator.ops.admin_site.OrchestratorAdminConfig",  # django.contrib.admin, on this site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_fsm",
    # The console's partial updates (request.htmx) and the htmx script it serves from static files.
    "django_htmx",
    # Failed password sign-ins counted and locked out (SIGN_IN_FAILURE_LIMIT), docs/auth.md.
    "axes",
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
    "webhooks",
    # Route steps run in an explicit order (routing.services.add_route_step), not in this list's.
    "policy",
    "transfer",
    "dashboard",
    # Above the domain: the /metrics page and its domain gauges read every app's tables.
    "observability",
]

# The orchestrator.http.site_middleware classes are Django's own, skipped for the bearer-token API
# under /api/v1/ (sessions, signed-in users, messages, htmx and static files concern only the
# people's pages). CSRF and frame denial stay Django's own classes for every path: the deploy check
# looks for them by name, and they cost an API request almost nothing.
MIDDLEWARE = [
    # First, so that every answer carries its headers: the https redirect and the refusal of an unknown
    # Host (both SecurityMiddleware's own), refusals before any view and static files too.
    "orchestrator.http.content_security.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "orchestrator.http.tracing.TraceIdMiddleware",
    # Under gunicorn (DEBUG=false) whitenoise serves the collected static files of the admin and
    # dashboard; with DEBUG on, runserver serves them from the apps. Below the trace, so every response
    # carries one; above the request telemetry, so a console page's dozens of static files are neither
    # logged nor counted.
    *([] if DEBUG else ["orchestrator.http.site_middleware.WhiteNoiseMiddleware"]),
    "orchestrator.telemetry.middleware.RequestTelemetryMiddleware",
    # Below the telemetry, so their refusals are logged and counted (with the trace id); above
    # everything that may read the body.
    "orchestrator.http.request_framing.ContentLengthMiddleware",
    "orchestrator.http.request_framing.PageBodyMiddleware",
    "orchestrator.http.site_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "orchestrator.http.site_middleware.AuthenticationMiddleware",
    "orchestrator.http.site_middleware.MessageMiddleware",
    "orchestrator.http.site_middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After the sign-in views, whose failures it counts: a locked-out sign-in gets its 429 page.
    "orchestrator.http.site_middleware.AxesMiddleware",
    # Last, so its replays pass every middleware above as the views' answers do.
    "orchestrator.http.replay_copies.ReplayCopyMiddleware",
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
                "dashboard.context_processors.console_nav",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Plain dicts rather than dj-database-url's TypedDict: the backend reads keys of its own
# (TRANSACTION_POOLING below).
DATABASES: dict[str, dict[str, Any]] = {
    "default": dict(
        dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            # Off by default: the check is a `SELECT 1` round trip before every request's first
            # query (a third of a read's time, docs/benchmarks.md). Without it a connection that
            # died with a database restart fails one request per worker with a 503, then reconnects.
            conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", False),
        )
    )
}
# PostgreSQL's settings are read (and a bad value refused) whatever the engine: a typo must not pass
# unnoticed on the embedded SQLite only to fail, or silently read as off, on the day PostgreSQL comes.
_DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5)
if _DATABASE_CONNECT_TIMEOUT < 1:
    # libpq reads 0 as no limit (psycopg then waits its own default, 130 s).
    raise ImproperlyConfigured(f"DATABASE_CONNECT_TIMEOUT must be at least 1 second, got {_DATABASE_CONNECT_TIMEOUT}")
_DATABASE_TRANSACTION_POOLING = env_bool("DATABASE_TRANSACTION_POOLING", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database host that answers nothing must not hold a worker past gunicorn's timeout (30 s) and
    # every readiness probe's (psycopg's own bound on a new connection is 130 s). A new connection
    # gives up after DATABASE_CONNECT_TIMEOUT (libpq counts it per address tried, and at least 2 s).
    # A kept connection whose peer goes silent (a partition, a frozen host) is dropped by the
    # kernel: keepalives find it while idle, tcp_user_timeout once a statement sent goes
    # unacknowledged, about 30 s either way instead of tcp_retries2's ~15 minutes. A long query is
    # not cut: the server's kernel acknowledges what it receives at once and answers the probes.
    # Any of these given in DATABASE_URL's query wins.
    database_options = DATABASES["default"].setdefault("OPTIONS", {})
    for option, value in (
        ("connect_timeout", _DATABASE_CONNECT_TIMEOUT),
        ("keepalives", 1),
        ("keepalives_idle", 10),
        ("keepalives_interval", 5),
        ("keepalives_count", 4),
        ("tcp_user_timeout", 30_000),
    ):
        database_options.setdefault(option, value)
    # Behind a transaction-mode pooler each transaction may run in another server session: the
    # backend then keeps nothing in a session beyond a transaction, neither a holdable cursor nor a
    # prepared read (orchestrator/postgresql/base.py, docs/operations.md).
    DATABASES["default"]["TRANSACTION_POOLING"] = _DATABASE_TRANSACTION_POOLING
    # Django's backend, with each transaction's BEGIN sent together with its first statement
    # (one round trip less per transaction; orchestrator/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "orchestrator.postgresql"
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
# Where a sign-in without a safe `next` lands: Django's default, /accounts/profile/, is no page here.
LOGIN_REDIRECT_URL = "/dashboard/"

# Request bodies above this size answer 413 (see orchestrator.http.problems).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=1024)
# Past 1 GiB (what the agent client reads at most) a body is no request an agent sends, and from 2**63
# the readers' bound overflows into a 500 on every write (an outside review).
if DATA_UPLOAD_MAX_MEMORY_SIZE > 1024**3:
    raise ImproperlyConfigured("MAX_REQUEST_BODY_BYTES must be at most 1073741824 (1 GiB)")
# A list page (API, console, audit stream, webhook batch; the sealer's and the exports' batches)
# ends after the row whose large columns bring it to this many bytes, so one request cannot load 200
# rows of a MiB each (orchestrator.bounded_pages.bounded_page). Counted as the database holds the
# values: an answer renders them larger (text of control characters up to 6x, as JSON escapes), and
# Python holds them larger still (docs/decisions.md, "A page is bounded by bytes too").
LIST_PAGE_MAX_BYTES = env_int("LIST_PAGE_MAX_BYTES", 4 * 1024 * 1024)
if LIST_PAGE_MAX_BYTES < 1:
    raise ImproperlyConfigured("LIST_PAGE_MAX_BYTES must be at least 1")

# --- Hardening: input and resource limits (docs/api.md "Input limits") ----------------------
# Deepest nesting of any JSON document accepted (a request body, an imported record); deeper is 400.
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 32)
# What is stored is written back with orjson, which stops at 255 levels; an audit event nests what it
# records a few levels deeper (metadata.before.metadata...). Deeper input would be taken, then fail
# every answer and stream that carried it, and read as an edited audit row (audit/loading.py).
if not 1 <= JSON_MAX_DEPTH <= 200:
    raise ImproperlyConfigured("JSON_MAX_DEPTH must be from 1 to 200")
# Live audit streams one principal may hold open at once (each holds a server thread); past it, 429.
AUDIT_STREAM_MAX_PER_PRINCIPAL = env_int("AUDIT_STREAM_MAX_PER_PRINCIPAL", 4, minimum=1)

# --- Security (production: DEBUG=false) -------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and Prometheus speak plain HTTP to the server from inside, past the TLS proxy: a redirect to
# https there fails the scrape, and some probes count a 3xx as healthy (found by an outside review).
SECURE_REDIRECT_EXEMPT = [r"^metrics$", r"^api/v1/health(/|$)"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Every answer's Content-Security-Policy (orchestrator.http.content_security; docs/decisions.md, "A
# content security policy"): scripts, styles, images and requests from this origin only, no plugin,
# no <base>, forms sent only here, never in a frame. Styles may also be inline: the console places
# each step of a trace's timeline with a style attribute, and Swagger UI and htmx write <style>;
# escaping keeps agents' text out of those, as out of everything else.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

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
    # Swagger UI from our own static files, not a CDN's latest build: its script runs on the origin of
    # the admin and the console, where it could act as any staff member who opens the docs.
    "SWAGGER_UI_DIST": "SIDECAR",
    # No validator badge: Swagger UI would send the schema's address to validator.swagger.io for it,
    # and the content security policy refuses the image anyway.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# How long a process keeps a token's principal or a role's pause is a constant, not a setting:
# the services that change them wait it out (orchestrator.identity.access_cache).

# --- Domain -----------------------------------------------------------------------------
# The roles agents may work in; routing to any other role is refused (400).
ORCHESTRATOR_ROLES = env_list("ORCHESTRATOR_ROLES", "finance,manager,engineering,marketing,support,operations")
SESSION_RETENTION_DAYS = env_int("SESSION_RETENTION_DAYS", 7)
APPROVAL_TIMEOUT_SECONDS = env_int("APPROVAL_TIMEOUT_SECONDS", 3600)
IDEMPOTENCY_ENABLED = env_bool("IDEMPOTENCY_ENABLED", True)
IDEMPOTENCY_REQUIRED = env_bool("IDEMPOTENCY_REQUIRED", False)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 86400)
# A TTL of 0 or less let every retry find its record expired and run again: exactly-once, silently
# off. Past these bounds a time added to now leaves the datetime range, a 500 on every write using it.
if not 1 <= IDEMPOTENCY_TTL_SECONDS <= 10 * 365 * 86400:
    raise ImproperlyConfigured("IDEMPOTENCY_TTL_SECONDS must be from 1 to 315360000 (ten years)")
# An answer the database replayed is also copied to a file on this host, so the key's later retries
# reaching any worker here are answered before the framework's request cycle
# (orchestrator.http.replay_copies). The copy lives this many seconds (0: no copies) or as long as its
# record, whichever is shorter: retries come soon after their first attempt, and the database answers
# a later one. The directory should be a memory file system; it holds one private subdirectory per user.
IDEMPOTENCY_REPLAY_COPY_SECONDS = env_int("IDEMPOTENCY_REPLAY_COPY_SECONDS", 300)
if not 0 <= IDEMPOTENCY_REPLAY_COPY_SECONDS <= 86400:
    raise ImproperlyConfigured("IDEMPOTENCY_REPLAY_COPY_SECONDS must be from 0 (no copies) to 86400 (a day)")
IDEMPOTENCY_REPLAY_COPY_DIR = env_str(
    "IDEMPOTENCY_REPLAY_COPY_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
)
if not 1 <= SESSION_RETENTION_DAYS <= 100 * 365:
    raise ImproperlyConfigured("SESSION_RETENTION_DAYS must be from 1 to 36500 (a hundred years)")
if not 1 <= APPROVAL_TIMEOUT_SECONDS <= 30 * 86400:
    raise ImproperlyConfigured("APPROVAL_TIMEOUT_SECONDS must be from 1 to 2592000 (30 days, what a request may ask)")

# Policy (docs/policy.md): role profiles, CEL rules, the kill switch. A role without a profile is
# allowed as before unless POLICY_REQUIRE_PROFILES; the first migrate loads the shipped profiles.
POLICY_REQUIRE_PROFILES = env_bool("POLICY_REQUIRE_PROFILES", False)
POLICY_DEFAULT_PROFILES_DIR = env_str("POLICY_DEFAULT_PROFILES_DIR", str(BASE_DIR / "profiles"))
# A rule that may take more than linear time in what an agent sends (a comprehension macro), and any
# rule over more than 16 KiB of variables, runs in a child process, killed past this many seconds for
# one check's rules or past this much memory; the check then denies (policy/evaluator.py,
# docs/policy.md).
POLICY_EVALUATION_SECONDS = env_float("POLICY_EVALUATION_SECONDS", 5.0)
POLICY_EVALUATION_MEMORY_MB = env_int("POLICY_EVALUATION_MEMORY_MB", 512)
if not 0.01 <= POLICY_EVALUATION_SECONDS <= 60:
    raise ImproperlyConfigured("POLICY_EVALUATION_SECONDS must be from 0.01 to 60")
if not 256 <= POLICY_EVALUATION_MEMORY_MB <= 65536:
    raise ImproperlyConfigured("POLICY_EVALUATION_MEMORY_MB must be from 256 to 65536")
PROFILES_REQUIRE_SIGNATURE = env_bool("PROFILES_REQUIRE_SIGNATURE", False)
# Base64 of the raw 32-byte Ed25519 public key that signs profile files (<file>.sig beside each).
PROFILES_SIGNING_PUBLIC_KEY = env_str("PROFILES_SIGNING_PUBLIC_KEY", "")

# Live audit stream (docs/audit.md): a stream ends after this long and the client resumes with
# Last-Event-ID, so no worker thread is held forever; without a Redis wake-up it polls this often.
AUDIT_STREAM_MAX_SECONDS = env_int("AUDIT_STREAM_MAX_SECONDS", 300)
AUDIT_STREAM_POLL_SECONDS = env_float("AUDIT_STREAM_POLL_SECONDS", 1.0)
AUDIT_STREAM_HEARTBEAT_SECONDS = env_float("AUDIT_STREAM_HEARTBEAT_SECONDS", 15.0)

# --- Work queue: task leases, retries, dead letters (docs/work-queue.md) -----------------------
# Every claim takes a lease of this many seconds (an agent may ask for 1..TASK_MAX_LEASE_SECONDS);
# a task whose lease passes is claimable again. Heartbeats extend it.
TASK_LEASE_SECONDS = env_int("TASK_LEASE_SECONDS", 300)
TASK_MAX_LEASE_SECONDS = env_int("TASK_MAX_LEASE_SECONDS", 3600)
# Claims a task gets before it is dead-lettered (a route may ask for 1..20).
TASK_MAX_ATTEMPTS = env_int("TASK_MAX_ATTEMPTS", 3)
# fail with retry: the n-th retry waits about base * 2**(n-1) seconds (with jitter), at most TASK_RETRY_MAX_SECONDS.
TASK_RETRY_BASE_SECONDS = env_float("TASK_RETRY_BASE_SECONDS", 10.0)
TASK_RETRY_MAX_SECONDS = env_float("TASK_RETRY_MAX_SECONDS", 3600.0)
# Tasks reclaimed (or cancelled past their deadline) per transaction by reclaim_tasks.
TASK_RECLAIM_BATCH_SIZE = env_int("TASK_RECLAIM_BATCH_SIZE", 5_000)
# A lease of 0 would expire as it is taken, a batch of 0 would stop every reclaim run: values that
# cannot mean what was meant stop the start, naming the setting, instead of failing at the first claim.
if not 1 <= TASK_MAX_LEASE_SECONDS <= 7 * 24 * 3600:
    raise ImproperlyConfigured("TASK_MAX_LEASE_SECONDS must be from 1 to 604800 (a week)")
if not 1 <= TASK_LEASE_SECONDS <= TASK_MAX_LEASE_SECONDS:
    raise ImproperlyConfigured("TASK_LEASE_SECONDS must be from 1 to TASK_MAX_LEASE_SECONDS")
if not 1 <= TASK_MAX_ATTEMPTS <= 20:
    raise ImproperlyConfigured("TASK_MAX_ATTEMPTS must be from 1 to 20, as a route may ask")
if not 0 <= TASK_RETRY_BASE_SECONDS <= TASK_RETRY_MAX_SECONDS <= 7 * 24 * 3600:
    raise ImproperlyConfigured(
        "TASK_RETRY_BASE_SECONDS and TASK_RETRY_MAX_SECONDS must satisfy 0 <= base <= max <= 604800 (a week)"
    )
if not 1 <= TASK_RECLAIM_BATCH_SIZE <= 100_000:
    raise ImproperlyConfigured("TASK_RECLAIM_BATCH_SIZE must be from 1 to 100000")

# --- Provable audit log: signed checkpoints (issue 16; docs/audit.md) ----------------------
# The Ed25519 private key (manage.py audit_keygen) that signs checkpoints; empty: sealing works,
# no checkpoints are signed and the system check warns that the log is not provable.
AUDIT_SIGNING_KEY_FILE = env_str("AUDIT_SIGNING_KEY_FILE")
# Earlier signing keys' public keys (base64, comma-separated): old checkpoints stay verifiable.
AUDIT_PUBLIC_KEYS = env_list("AUDIT_PUBLIC_KEYS")
# One JSON file per checkpoint is written here (never rewritten); keep it off the database host.
AUDIT_CHECKPOINT_DIR = env_str("AUDIT_CHECKPOINT_DIR")
# A checkpoint follows every sealing run that sealed events, and at least this often regardless.
AUDIT_CHECKPOINT_SECONDS = env_int("AUDIT_CHECKPOINT_SECONDS", 300)
# A second party that keeps copies: each checkpoint is POSTed here; failures are retried next run.
AUDIT_WITNESS_URL = env_str("AUDIT_WITNESS_URL")
AUDIT_WITNESS_TIMEOUT_SECONDS = env_float("AUDIT_WITNESS_TIMEOUT_SECONDS", 5.0, minimum=0.1)

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
# A job still running after this long has its worker process killed and replaced (Celery's hard
# limit; prefork workers, as docker-compose.yml runs them), and runs again at its next beat. A job
# stuck on a socket or a lock would otherwise hold its worker for ever, and with every worker held
# no job runs at all. Safe to stop anywhere, as a kill -9 is: each job commits in batches or holds
# a lease that lapses. Under the visibility timeout, or Redis would hand the running job out again.
JOB_TIME_LIMIT_SECONDS = env_int("JOB_TIME_LIMIT_SECONDS", 600)
if not 1 <= JOB_TIME_LIMIT_SECONDS < CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]:
    raise ImproperlyConfigured("JOB_TIME_LIMIT_SECONDS must be at least 1 and below CELERY_VISIBILITY_TIMEOUT_SECONDS")
CELERY_TASK_TIME_LIMIT = JOB_TIME_LIMIT_SECONDS

_BEAT_JOBS = {
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
    "clear_expired_sign_ins": {
        "task": "orchestrator.identity.jobs.clear_expired_sign_ins",
        "schedule": env_int("CLEAR_EXPIRED_SIGN_INS_INTERVAL_SECONDS", 60 * 60),
    },
    "seal_audit": {
        "task": "audit.jobs.seal_audit",
        # Sealing also signs the checkpoints, so it runs at least every AUDIT_CHECKPOINT_SECONDS.
        "schedule": min(env_int("SEAL_AUDIT_INTERVAL_SECONDS", 60), AUDIT_CHECKPOINT_SECONDS),
    },
    "reclaim_tasks": {
        "task": "routing.jobs.reclaim_tasks",
        "schedule": env_int("RECLAIM_TASKS_INTERVAL_SECONDS", 60),
    },
    # Approvals that reach people (docs/webhooks.md): reminders, approval emails, webhook delivery.
    "remind_approvals": {
        "task": "approvals.jobs.remind_approvals",
        "schedule": env_int("REMIND_APPROVALS_INTERVAL_SECONDS", 30),
    },
    "email_approvals": {
        "task": "approvals.jobs.email_approvals",
        "schedule": env_int("EMAIL_APPROVALS_INTERVAL_SECONDS", 15),
    },
    "deliver_webhooks": {
        "task": "webhooks.jobs.deliver_webhooks",
        "schedule": env_int("DELIVER_WEBHOOKS_INTERVAL_SECONDS", 5),
    },
}
for _job, _entry in _BEAT_JOBS.items():
    # An interval of 0 or less would expire every run as it is sent: the job would never run, silently.
    if _entry["schedule"] < 1:
        raise ImproperlyConfigured(
            f"{_job.upper()}_INTERVAL_SECONDS must be at least 1"
            + (" (and AUDIT_CHECKPOINT_SECONDS, which bounds it)" if _job == "seal_audit" else "")
        )
del _job, _entry
# A run still queued when the next one is due is dropped (`expires`): after an outage or while every
# worker is busy, the queue holds one run of each job, not one per missed beat.
CELERY_BEAT_SCHEDULE = {
    name: {**entry, "options": {"expires": entry["schedule"]}} for name, entry in _BEAT_JOBS.items()
}
# Sessions expired per transaction by expire_sessions: short row locks, bounded memory.
SESSION_EXPIRY_BATCH_SIZE = env_int("SESSION_EXPIRY_BATCH_SIZE", 10_000)
if not 1 <= SESSION_EXPIRY_BATCH_SIZE <= 100_000:
    raise ImproperlyConfigured("SESSION_EXPIRY_BATCH_SIZE must be from 1 to 100000")

# --- Observability: metrics, structured logs, trace export, health (docs/operations.md) ------
# json: one JSON object a line (production default); text: readable lines (the DEBUG default, `make run`).
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, got {LOG_FORMAT!r}")
LOG_LEVEL = env_str("LOG_LEVEL").strip().upper() or "INFO"
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)
# Each process writes its request lines and request measurements in batches, at most this many seconds
# late (orchestrator/telemetry/request_batches.py); 0 writes each request's as it ends.
REQUEST_TELEMETRY_FLUSH_SECONDS = env_float("REQUEST_TELEMETRY_FLUSH_SECONDS", 1.0)
# Below 0.1 s the timer would wake the process for nothing: 0 already writes each request's at once.
if not (REQUEST_TELEMETRY_FLUSH_SECONDS == 0 or 0.1 <= REQUEST_TELEMETRY_FLUSH_SECONDS <= 60):
    raise ImproperlyConfigured("REQUEST_TELEMETRY_FLUSH_SECONDS must be 0, or from 0.1 to 60")
# Request, job, claim and approval instruments; off, nothing is recorded (the page still answers).
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
# The bearer token Prometheus sends to /metrics (and to METRICS_BIND). Empty: /metrics answers 404.
# Stripped: a value filled from a file (a Kubernetes Secret) ends in a newline no header can carry.
METRICS_TOKEN = env_str("METRICS_TOKEN").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 24:
    raise ImproperlyConfigured(
        "METRICS_TOKEN must be at least 24 characters (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )
# host:port where a Celery worker serves its own metrics (the web serves them at /metrics). Empty: off.
METRICS_BIND = env_str("METRICS_BIND").strip()
if METRICS_BIND:
    try:
        parse_bind(METRICS_BIND)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
# Domain gauges (queue depth, seal lag...) are computed at most this often per process.
METRICS_GAUGE_CACHE_SECONDS = env_float("METRICS_GAUGE_CACHE_SECONDS", 5.0)
# 0 computes them at every scrape; past a few minutes they would stop telling what the database holds.
if not 0 <= METRICS_GAUGE_CACHE_SECONDS <= 300:
    raise ImproperlyConfigured("METRICS_GAUGE_CACHE_SECONDS must be from 0 to 300")
# How long one gauge source's read may wait on PostgreSQL (a lock held on its table by a migration,
# a slow count) before it reports 0: the page must answer inside Prometheus's scrape timeout (10 s
# by default), not hold a web worker until gunicorn kills it. Two sources read the task table.
METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS = env_float("METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS", 2.0)
if not 0.1 <= METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS <= 60:
    raise ImproperlyConfigured("METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS must be from 0.1 to 60")
# Where gunicorn and Celery processes keep their metric files so a scrape adds them up; one
# directory per server (gunicorn master or Celery worker), emptied when that server starts.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
# OpenTelemetry trace export (OTLP/HTTP), only when set; needs requirements-otel.txt installed.
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT")
# The Celery worker keeps the LOGGING above (JSON lines) instead of installing its own handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Approvals that reach people: reminders, escalation, email, webhooks (docs/webhooks.md) ----
# Links in emails and Slack messages: this origin + /dashboard/approvals/<id>/.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://localhost:8000")
# Reminders (approval.reminder) at these fractions of each approval level's lifetime.
try:
    APPROVAL_REMINDER_FRACTIONS = [float(f) for f in env_list("APPROVAL_REMINDER_FRACTIONS", "0.5,0.9")]
    if not all(0 < fraction < 1 for fraction in APPROVAL_REMINDER_FRACTIONS):
        raise ValueError("a fraction outside (0, 1)")
except ValueError:
    raise ImproperlyConfigured(
        "APPROVAL_REMINDER_FRACTIONS must be numbers between 0 and 1 separated by commas, such as 0.5,0.9"
    ) from None
# Email: SMTP when EMAIL_HOST is set, otherwise the console (make run prints the mails).
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", bool(EMAIL_HOST))
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "orchestrator@localhost")
# Webhooks: private, loopback, link-local and metadata addresses are refused unless this is true.
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# An event is retried (exponential backoff with jitter) until this long after it was recorded.
WEBHOOK_RETRY_WINDOW_SECONDS = env_float("WEBHOOK_RETRY_WINDOW_SECONDS", 24 * 3600.0, minimum=0)
WEBHOOK_BACKOFF_BASE_SECONDS = env_float("WEBHOOK_BACKOFF_BASE_SECONDS", 5.0, minimum=0.1)
WEBHOOK_BACKOFF_MAX_SECONDS = env_float("WEBHOOK_BACKOFF_MAX_SECONDS", 3600.0, minimum=0.1)
# After this many events in a row failed for good, the subscription is disabled and staff are told.
WEBHOOK_MAX_CONSECUTIVE_FAILURES = env_int("WEBHOOK_MAX_CONSECUTIVE_FAILURES", 5, minimum=1)
# Events one dispatcher pass delivers per subscription at most.
WEBHOOK_BATCH_SIZE = env_int("WEBHOOK_BATCH_SIZE", 500, minimum=1)

# --- OIDC (agents' JWTs and humans' admin login); empty issuer = local tokens and accounts only.
# docs/auth.md explains each value and how to set them for Keycloak.
OIDC_ISSUER = env_str("OIDC_ISSUER")
OIDC_AUDIENCE = env_str("OIDC_AUDIENCE", "orchestrator")
# Dotted path into the token's claims; a list value (Keycloak's realm_access.roles) gives its first known role.
OIDC_ROLE_CLAIM = env_str("OIDC_ROLE_CLAIM", "role")
# Staff when the claim at this dotted path equals, or is a list containing, OIDC_STAFF_VALUE.
OIDC_STAFF_CLAIM = env_str("OIDC_STAFF_CLAIM", "groups")
OIDC_STAFF_VALUE = env_str("OIDC_STAFF_VALUE", "orchestrator-staff")
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 5, minimum=1)
OIDC_LEEWAY_SECONDS = env_int("OIDC_LEEWAY_SECONDS", 30, minimum=0)
OIDC_JWKS_CACHE_SECONDS = env_int("OIDC_JWKS_CACHE_SECONDS", 3600, minimum=0)
# An unknown key refetches the JWKS at most this often, so forged tokens cannot flood the provider.
OIDC_JWKS_MIN_REFETCH_SECONDS = env_int("OIDC_JWKS_MIN_REFETCH_SECONDS", 30, minimum=0)
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
# PKCE (S256) on the console's sign-in, as RFC 9700 asks of confidential clients too: a code stolen
# on its way back cannot be redeemed without the verifier held in this browser's session.
OIDC_USE_PKCE = True
# Off by default: a superuser holds every permission and decides every role's approvals, so the
# provider's staff group alone would grant what the approver groups are there to split (docs/auth.md).
OIDC_STAFF_IS_SUPERUSER = env_bool("OIDC_STAFF_IS_SUPERUSER", False)
# axes first: it refuses a sign-in locked out before any backend checks the password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
if OIDC_ISSUER and OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.insert(1, "orchestrator.identity.oidc_login.OIDCBackend")

# Password sign-ins (the admin's form, where the console sends people too): after SIGN_IN_FAILURE_LIMIT failures for one
# username from one address, that pair is refused for SIGN_IN_LOCKOUT_MINUTES (429), however right the
# password; a success clears the count. Per pair, so a guesser elsewhere cannot lock a person out
# from every address. Nothing limited them before (an outside review). The provider's sign-in has
# its own limits.
AXES_FAILURE_LIMIT = env_int("SIGN_IN_FAILURE_LIMIT", 10, minimum=1)
# How many proxies in front of the server append the address they saw to X-Forwarded-For (nginx's
# $proxy_add_x_forwarded_for does): a sign-in is then counted under the address the outermost of them
# saw, the Nth entry from the right. 0 (the default) counts the connection's own address: a client
# cannot choose it, but behind a proxy every client shares the proxy's, and one guesser locked a
# username out for everyone (docs/auth.md). Set it only when nothing reaches the server but through them.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "orchestrator.identity.sign_ins.client_address"
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env_int("SIGN_IN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The cool-off runs from the failure that locked, not from the last refused try: else a guesser keeps
# a person locked out for good with one try a quarter of an hour.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_WHITELIST_CALLABLE = "orchestrator.identity.sign_ins.not_a_password_sign_in"
# Failures are kept (axes_accessattempt, cleared by the cool-off); successful sign-ins are not
# logged a second time (the audit log and the session table have them).
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
# Lockouts are lifted with its commands (axes_reset, axes_reset_username): its admin pages would delete
# rows outside any service and audit record.
AXES_ENABLE_ADMIN = False
# axes looks for its middleware by name; ours is its subclass that leaves the API's requests alone
# (orchestrator.http.site_middleware), so its check cannot see it.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]
