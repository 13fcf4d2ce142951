"""The Grafana dashboard in docs/grafana queries only metrics a scrape really has."""

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit.jobs import seal_audit

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "orchestrator.json"
TOKEN = "a-metrics-token-for-the-tests-0123456789"


def queried_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expr in expressions for name in re.findall(r"\borchestrator_[a-z_]+\b", expr)}


@pytest.mark.django_db(transaction=True)
def test_every_metric_the_dashboard_queries_is_in_a_scrape(finance, engineering, manager, route, anonymous, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_GAUGE_CACHE_SECONDS = 0
    route("engineering")
    assert engineering.post("/api/v1/tasks/claim-next", {}, format="json").status_code == 200
    gated = route("engineering", requires_approval=True, approver_role="manager")
    decided = manager.post(f"/api/v1/approvals/{gated['approval_id']}/decision", {"decision": "reject"}, format="json")
    assert decided.status_code == 200
    route("engineering", requires_approval=True, approver_role="manager")
    assert seal_audit.apply().successful()
    # The witness's backlog is a gauge only where a witness is configured (after the sealing, which
    # would send to it).
    settings.AUDIT_WITNESS_URL = "http://127.0.0.1:9/witness"

    response = anonymous.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    samples = {
        sample.name for family in text_string_to_metric_families(response.content.decode()) for sample in family.samples
    }
    queried = queried_metrics()
    assert len(queried) >= 15
    assert queried - samples == set()
