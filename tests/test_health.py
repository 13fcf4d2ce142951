"""GET /api/v1/health: 200 while the database answers, with the cache and broker status."""

import pytest
from django.db import connection


def test_health_answers_200_without_credentials_when_everything_is_up(anonymous, db):
    response = anonymous.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["cache"] == "ok"
    assert body["status"] == "ok"


def test_health_reports_a_dead_cache_as_degraded_but_stays_200(anonymous, db, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }

    response = anonymous.get("/api/v1/health")

    assert response.status_code == 200
    assert response.json()["cache"] == "degraded"
    assert response.json()["status"] == "degraded"


@pytest.mark.django_db(transaction=True)
def test_health_answers_503_when_the_database_does_not(anonymous, monkeypatch):
    def refuse(*args, **kwargs):
        from django.db import OperationalError

        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)
    connection.close()

    response = anonymous.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
