"""Probes and Prometheus speak plain HTTP to the server from inside, past the TLS proxy. With
SECURE_SSL_REDIRECT on (production's default) /metrics and the health endpoints answer them rather
than redirecting to https, which failed the documented scrape (an outside review); every other path
is still redirected."""

import pytest
from django.test import Client

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def production_redirects(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["web"]
    settings.METRICS_TOKEN = METRICS_TOKEN
    return Client(HTTP_HOST="web:8000")


@pytest.mark.django_db
def test_the_scrape_and_the_probes_are_answered_over_plain_http(production_redirects):
    scrape = production_redirects.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    live = production_redirects.get("/api/v1/health/live")
    # The older combined path that docs/operations.md keeps for existing monitors.
    combined = production_redirects.get("/api/v1/health")
    ready = production_redirects.get("/api/v1/health/ready")

    assert scrape.status_code == 200
    assert live.status_code == 200
    assert combined.status_code in (200, 503)
    assert ready.status_code in (200, 503)


@pytest.mark.django_db
def test_every_other_path_is_still_redirected(production_redirects):
    for path in ("/api/v1/sessions", "/dashboard/", "/admin/", "/metricsx", "/metrics/", "/api/v1/healthz"):
        answer = production_redirects.get(path)

        assert answer.status_code == 301, path
        assert answer["Location"].startswith("https://web:8000/"), path
