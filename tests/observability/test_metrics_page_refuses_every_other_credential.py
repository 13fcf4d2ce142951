"""/metrics opens for the metrics token alone, and no scan of paths or methods can grow its series."""

import re
import secrets

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

METRICS_TOKEN = "outside-attack-metrics-token-" + "0123456789abcdef"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.METRICS_GAUGE_CACHE_SECONDS = 0
    return METRICS_TOKEN


def test_no_credential_other_than_the_metrics_token_opens_the_metrics_page(
    anonymous, staff, db, metrics_token, django_user_model
):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-" + secrets.token_hex(8))
    browser = Client()
    browser.force_login(admin)
    attempts = [
        (anonymous, {}),
        (anonymous, {"HTTP_AUTHORIZATION": f"bearer{METRICS_TOKEN}"}),
        (anonymous, {"HTTP_AUTHORIZATION": f"Basic {METRICS_TOKEN}"}),
        (anonymous, {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN[:-1]}"}),
        (anonymous, {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}{METRICS_TOKEN}"}),
        (anonymous, {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN[:-1]}é"}),
        (anonymous, {"HTTP_AUTHORIZATION": "Bearer \xff\xfe\x00"}),
        (anonymous, {"HTTP_X_METRICS_TOKEN": METRICS_TOKEN}),
        (anonymous, {"HTTP_COOKIE": f"metrics_token={METRICS_TOKEN}"}),
        (staff, {}),
        (browser, {}),
    ]
    for client, headers in attempts:
        response = client.get(f"/metrics?token={METRICS_TOKEN}&access_token={METRICS_TOKEN}", **headers)
        assert response.status_code == 401, (headers, response.content)
        assert b"orchestrator_" not in response.content
    assert anonymous.get("/metrics", HTTP_AUTHORIZATION=f"Bearer  {METRICS_TOKEN} ").status_code == 200


def test_a_scan_of_random_paths_and_methods_adds_no_metric_series(anonymous, finance, db, metrics_token):
    def series():
        body = anonymous.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
        return {
            tuple(sorted(sample.labels.items()))
            for family in text_string_to_metric_families(body)
            if family.name == "orchestrator_http_requests"
            for sample in family.samples
        }

    def scan():
        word = secrets.token_hex(6)
        for client in (anonymous, finance):
            for path in (
                f"/{word}",
                f"/api/v1/{word}",
                f"/api/v1/sessions/{word}",
                f"/api/v1/sessions/{word}/messages",
                f"/admin/{word}/{word}/",
                f"/dashboard/trace/{word}",
                f"/dashboard/profiles/{word}/",
                f"/metrics/{word}",
            ):
                for method in ("GET", word.upper(), "PROPFIND"):
                    client.generic(method, path)

    scan()
    before = series()
    scan()
    scan()
    after = series()

    assert after == before
    routes = {dict(labels)["route"] for labels in after}
    assert not any("/" in route or re.search(r"[0-9a-f]{12}", route) for route in routes), routes
