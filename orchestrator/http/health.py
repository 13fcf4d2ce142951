"""Health: GET /api/v1/health (database, cache, broker), /health/live (the process answers; nothing
else is touched) and /health/ready (may this instance take traffic: database, migrations, signing key
must be ok; cache and broker are reported but never fail it, since requests succeed without Redis)."""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from orchestrator.db import client_deadline, leave_this_database_after_the_request
from orchestrator.http.readiness import READY_REQUIREMENTS, app_checks
from orchestrator.http.renderers import JsonAnswer
from orchestrator.http.views import ApiView

logger = logging.getLogger(__name__)


# PostgreSQL: in one statement, whether this database takes writes. A hot standby, or a primary
# demoted or set read-only during a failover, answers reads and refuses every write; an instance
# on it cannot do its work (agents write), so it is not ready.
_POSTGRESQL_PROBE = "SELECT current_setting('transaction_read_only') = 'off'"


def _probe_seconds() -> float:
    # As long as a new connection may take (DATABASE_CONNECT_TIMEOUT).
    return float(connection.settings_dict.get("OPTIONS", {}).get("connect_timeout") or 5)


def database_status():
    # A kept connection that died with a database restart is no outage: the probe asks again on a
    # fresh one, so an instance is not reported unready once per worker after a restart (requests,
    # without DATABASE_CONN_HEALTH_CHECKS, still pay that one failure). A fresh connection that
    # failed is not retried: against an unreachable host that would double the probe's wait.
    may_retry = connection.connection is not None and not connection.in_atomic_block
    while True:
        try:
            with connection.cursor() as cursor, client_deadline(_probe_seconds()):
                if connection.vendor == "postgresql":
                    cursor.execute(_POSTGRESQL_PROBE)
                    (takes_writes,) = cursor.fetchone()
                    if takes_writes:
                        return "ok"
                    # As for a write refused (orchestrator.http.problems): the next probe connects anew.
                    leave_this_database_after_the_request()
                    return "read_only"
                cursor.execute("SELECT 1")
            return "ok"
        except Exception as exc:
            if not may_retry:
                logger.warning("health: database unavailable: %s", exc)
                return "unavailable"
            may_retry = False
            connection.close()


def cache_status():
    if not settings.REDIS_URL:
        return "local"
    try:
        client = cache.client.get_client(write=True)
        client.ping()
        return "ok"
    except Exception as exc:
        logger.warning("health: cache unavailable: %s", exc)
        return "degraded"


def broker_status():
    broker_url = getattr(settings, "CELERY_BROKER_URL", "")
    if not broker_url or not broker_url.startswith(("redis://", "rediss://")):
        return "local"
    try:
        import redis

        redis.Redis.from_url(broker_url, socket_connect_timeout=0.5, socket_timeout=0.5).ping()
        return "ok"
    except Exception as exc:
        logger.warning("health: broker unavailable: %s", exc)
        return "degraded"


# Loading the migration graph reads every migration file; an "all applied" answer is kept this long.
MIGRATIONS_CHECK_SECONDS = 60.0
_migrations_checked_at = None
_migrations_lock = threading.Lock()


def migrations_status():
    global _migrations_checked_at
    with _migrations_lock:
        if _migrations_checked_at is not None and time.monotonic() - _migrations_checked_at < MIGRATIONS_CHECK_SECONDS:
            return "ok"
        try:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as exc:
            logger.warning("health: migrations could not be checked: %s", exc)
            return "unavailable"
        if pending:
            return "pending"
        _migrations_checked_at = time.monotonic()
        return "ok"


def readiness():
    checks = {"database": database_status()}
    # Without a database the migrations cannot be read: one dead dependency, one failing check. A
    # read-only one still tells.
    checks["migrations"] = migrations_status() if checks["database"] in ("ok", "read_only") else "unavailable"
    for name, check in app_checks.items():
        checks[name] = check()
    checks["cache"] = cache_status()
    checks["broker"] = broker_status()
    ready = all(checks[name] in allowed for name, allowed in READY_REQUIREMENTS.items())
    return ready, checks


def _not_ready(body):
    response = JsonAnswer(body, status=503)
    # The answer a probe asks for, not a failure of this request: the failing check has logged its
    # warning and the request line records the 503, where Django would add an ERROR line per probe
    # (every few seconds from every load balancer, for as long as an outage lasts).
    response._has_been_logged = True
    return response


_HEALTH_SCHEMA = inline_serializer("HealthStatus", {"status": serializers.CharField()})


class LiveView(ApiView):
    """The process is up and answering: no dependency is touched, so a database outage never
    gets every instance restarted at once."""

    authentication_classes = []
    permission_classes = [AllowAny]
    # Probes and load balancers append what they like (cache busters); a probe reads none of it.
    query_methods = frozenset({"get"})

    @extend_schema(responses={(200, "application/json"): _HEALTH_SCHEMA}, operation_id="health_live")
    def get(self, request):
        return JsonAnswer({"status": "ok"})


class ReadyView(ApiView):
    authentication_classes = []
    permission_classes = [AllowAny]
    # Probes and load balancers append what they like (cache busters); a probe reads none of it.
    query_methods = frozenset({"get"})

    @extend_schema(
        responses={
            (200, "application/json"): inline_serializer(
                "Readiness",
                {
                    "status": serializers.CharField(),
                    "checks": serializers.DictField(child=serializers.CharField()),
                },
            )
        },
        operation_id="health_ready",
    )
    def get(self, request):
        ready, checks = readiness()
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        return JsonAnswer(body) if ready else _not_ready(body)


class HealthView(ApiView):
    authentication_classes = []
    permission_classes = [AllowAny]
    # Probes and load balancers append what they like (cache busters); a probe reads none of it.
    query_methods = frozenset({"get"})

    @extend_schema(
        responses={
            (200, "application/json"): inline_serializer(
                "Health",
                {
                    "status": serializers.CharField(),
                    "database": serializers.CharField(),
                    "cache": serializers.CharField(),
                    "broker": serializers.CharField(),
                },
            )
        },
        operation_id="health",
    )
    def get(self, request):
        body = {"database": database_status(), "cache": cache_status(), "broker": broker_status()}
        if body["database"] != "ok":
            body["status"] = "unavailable"
            return _not_ready(body)
        body["status"] = "degraded" if "degraded" in body.values() else "ok"
        return JsonAnswer(body)
