"""GET /api/v1/health: is the database answering, and how are the cache and the broker."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from orchestrator.http.views import ApiView

logger = logging.getLogger(__name__)


def database_status():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        logger.warning("health: database unavailable: %s", exc)
        return "unavailable"


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


class HealthView(ApiView):
    authentication_classes = []
    permission_classes = [AllowAny]

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
            return Response(body, status=503)
        body["status"] = "degraded" if "degraded" in body.values() else "ok"
        return Response(body)
