"""/metrics in-process: shut (404) unless a token is configured; the domain gauges are cached per process,
and a failing gauge source is reported, not a failed page."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability import gauges
from observability.gauges import DomainGauges, gauge, gauge_source
from orchestrator.telemetry.middleware import KNOWN_METHODS

TOKEN = "a-metrics-token-for-the-tests-0123456789"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def test_without_a_configured_token_the_page_does_not_exist_whatever_the_caller_sends(anonymous, staff, db, settings):
    settings.METRICS_TOKEN = ""

    for client in (anonymous, staff):
        for authorization in ("", "Bearer ", "Bearer x"):
            response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)
            assert response.status_code == 404
            assert response["Content-Type"] == "application/problem+json"


def test_a_short_metrics_token_is_refused_at_startup(monkeypatch):
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "METRICS_TOKEN": "short"},
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0
    assert "METRICS_TOKEN must be at least 24 characters" in completed.stderr


def test_the_gauges_are_computed_at_most_once_per_cache_period(db, settings):
    settings.METRICS_GAUGE_CACHE_SECONDS = 5
    calls = []
    now = [100.0]

    def counting(at):
        calls.append(at)
        family = gauge("test_gauge", "A test gauge.")
        family.add_metric([], len(calls))
        yield family

    collector = DomainGauges(sources={"counting": counting}, clock=lambda: now[0])

    assert collector.collect()[0].samples[0].value == 1
    now[0] += 4.9
    assert collector.collect()[0].samples[0].value == 1
    now[0] += 0.2
    assert collector.collect()[0].samples[0].value == 2


def test_a_failing_source_reports_up_0_and_the_others_still_answer(anonymous, db, metrics_token, monkeypatch, settings):
    settings.METRICS_GAUGE_CACHE_SECONDS = 0

    def broken(now):
        yield gauge("orchestrator_half_done", "Yielded before the failure.")
        raise RuntimeError("table locked")

    monkeypatch.setitem(gauges.SOURCES, "broken", broken)
    monkeypatch.setattr(gauges.domain_gauges, "_computed_at", None)

    families = scrape(anonymous)

    up = {sample.labels["source"]: sample.value for sample in families["orchestrator_gauge_source_up"].samples}
    assert up == {
        "tasks": 1,
        "approvals": 1,
        "audit": 1,
        "idempotency": 1,
        "leases": 1,
        "webhooks": 1,
        "audit_witness": 1,
        "audit_checkpoints": 1,
        "broken": 0,
    }
    assert "orchestrator_half_done" not in families
    assert "orchestrator_tasks" in families


def test_a_new_gauge_source_is_one_decorated_function(anonymous, db, metrics_token, monkeypatch, settings):
    settings.METRICS_GAUGE_CACHE_SECONDS = 0
    monkeypatch.setattr(gauges, "SOURCES", dict(gauges.SOURCES))
    monkeypatch.setattr(gauges.domain_gauges, "sources", gauges.SOURCES)
    monkeypatch.setattr(gauges.domain_gauges, "_computed_at", None)

    @gauge_source
    def leases(now):
        family = gauge("orchestrator_tasks_lease_overdue", "Claimed tasks whose lease expired.", ["role"])
        family.add_metric(["engineering"], 2)
        yield family

    families = scrape(anonymous)

    assert families["orchestrator_tasks_lease_overdue"].samples[0].value == 2


def test_request_metrics_are_labelled_by_the_url_pattern_name_never_the_path(
    finance, anonymous, db, metrics_token, settings
):
    settings.METRICS_GAUGE_CACHE_SECONDS = 0
    for n in range(3):
        finance.get(f"/api/v1/sessions/00000000-0000-4000-8000-00000000000{n}")
    anonymous.get("/wp-admin/setup-config.php")
    finance.generic("BREW", "/api/v1/sessions")
    finance.generic("X" * 200, "/api/v1/sessions")

    families = scrape(anonymous)

    samples = families["orchestrator_http_requests"].samples
    routes = {sample.labels["route"] for sample in samples}
    assert "session-detail" in routes and "unmatched" in routes
    assert not any("/" in route for route in routes)
    assert {sample.labels["method"] for sample in samples} <= KNOWN_METHODS | {"other"}
    assert any(sample.labels == {"route": "sessions", "method": "other", "status": "405"} for sample in samples)


def test_with_metrics_disabled_requests_are_not_recorded_but_the_page_answers(
    finance, anonymous, db, metrics_token, settings
):
    settings.METRICS_GAUGE_CACHE_SECONDS = 0
    finance.get("/api/v1/sessions")
    settings.METRICS_ENABLED = False

    def session_list_requests():
        samples = scrape(anonymous)["orchestrator_http_requests"].samples
        return [sample for sample in samples if sample.labels["route"] == "sessions"]

    before = session_list_requests()
    for _ in range(3):
        finance.get("/api/v1/sessions")

    assert before and session_list_requests() == before
    assert "orchestrator_tasks" in scrape(anonymous)
