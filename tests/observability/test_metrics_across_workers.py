"""GET /metrics of a real gunicorn with 3 workers: counters add up across the workers, the domain gauges
equal what the database holds, the page parses, and it stays shut without the metrics token."""

import socket
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from approvals.models import Approval
from audit.models import AuditEvent
from orchestrator.http.models import IdempotencyRecord
from routing.models import Task
from tests.observability.conftest import once

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(server):
    answer = server.request("GET", "/metrics", headers={"Authorization": f"Bearer {server.metrics_token}"})
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(answer.body.decode())}


def sample_value(families, family_name, sample_name=None, **labels):
    """The value of the one sample of `family_name` with exactly these labels (0 if there is none)."""
    values = [
        sample.value
        for sample in families[family_name].samples
        if sample.name == (sample_name or family_name) and sample.labels == labels
    ]
    assert len(values) <= 1, values
    return values[0] if values else 0.0


# (route, method, status) -> how many requests the test below sends.
SERVED = {
    ("sessions", "POST", "201"): 6,
    ("session-detail", "GET", "200"): 4,
    ("session-detail", "GET", "404"): 3,
    ("sessions", "GET", "401"): 2,
    ("tasks-route", "POST", "202"): 5,
    ("tasks-claim-next", "POST", "200"): 1,
    ("approval-decision", "POST", "200"): 1,
}


def requests_counted(families, route, method, status):
    requests = "orchestrator_http_requests"
    if requests not in families:
        return 0.0
    return sample_value(families, requests, requests + "_total", route=route, method=method, status=status)


def stalled_connection(server, token, session_id):
    """A request whose headers are not finished: the sync worker that accepted it is held until it ends,
    so the requests sent meanwhile are served by the other workers."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"GET /api/v1/sessions/{session_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n".encode()
    )
    return sock


def finish(sock):
    sock.sendall(b"Connection: close\r\n\r\n")
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    return response


def test_counters_add_up_across_workers_and_gauges_equal_the_database(live_server_with_metrics, issue_token):
    server = live_server_with_metrics
    finance, engineering, manager = issue_token("finance"), issue_token("engineering"), issue_token("manager")
    as_finance = {"Authorization": f"Bearer {finance}"}

    created = [
        server.request("POST", "/api/v1/sessions", body={"role": "finance"}, headers=as_finance) for _ in range(5)
    ]
    assert {answer.status for answer in created} == {201}
    session_ids = [answer.json()["session_id"] for answer in created]
    keyed = server.request(
        "POST", "/api/v1/sessions", body={"role": "finance"}, headers={**as_finance, "Idempotency-Key": "k-1"}
    )
    assert keyed.status == 201

    held = stalled_connection(server, finance, session_ids[0])
    for session_id in session_ids[1:4]:
        assert server.request("GET", f"/api/v1/sessions/{session_id}", headers=as_finance).status == 200
    for _ in range(3):
        assert server.request("GET", f"/api/v1/sessions/{uuid.uuid4()}", headers=as_finance).status == 404
    for _ in range(2):
        assert server.request("GET", "/api/v1/sessions").status == 401
    assert b" 200 OK" in finish(held).split(b"\r\n", 1)[0]

    for n in range(3):
        routed = server.request(
            "POST",
            "/api/v1/tasks/route",
            body={"type": "invoice.check", "to_role": "engineering", "payload": {"n": n}},
            headers=as_finance,
        )
        assert routed.status == 202, routed.body
    claimed = server.request(
        "POST", "/api/v1/tasks/claim-next", body={}, headers={"Authorization": f"Bearer {engineering}"}
    )
    assert claimed.status == 200, claimed.body
    gated = [
        server.request(
            "POST",
            "/api/v1/tasks/route",
            body={
                "type": "payment",
                "to_role": "engineering",
                "payload": {},
                "requires_approval": True,
                "approver_role": "manager",
            },
            headers=as_finance,
        ).json()
        for _ in range(2)
    ]
    decided = server.request(
        "POST",
        f"/api/v1/approvals/{gated[0]['approval_id']}/decision",
        body={"decision": "approve"},
        headers={"Authorization": f"Bearer {manager}"},
    )
    assert decided.status == 200, decided.body

    # Each worker writes its request counts in batches, up to REQUEST_TELEMETRY_FLUSH_SECONDS after
    # answering: the page is read again until they are all in (or the wait ends and this fails).
    families = once(
        lambda: scrape(server),
        lambda families: all(requests_counted(families, *key) == n for key, n in SERVED.items()),
    )

    # Every worker's counts are in the one page: at least two workers served these requests.
    worker_files = {path.name for path in server.metrics_dir.glob("counter_*.db")}
    assert len(worker_files) >= 2, worker_files
    for key, count in SERVED.items():
        assert requests_counted(families, *key) == count, key
    duration = "orchestrator_http_request_duration_seconds"
    assert sample_value(families, duration, duration + "_count", route="session-detail", method="GET") == 7
    assert sample_value(families, duration, duration + "_bucket", route="session-detail", method="GET", le="+Inf") == 7
    claim_wait = "orchestrator_task_claim_wait_seconds"
    assert sample_value(families, claim_wait, claim_wait + "_count", role="engineering") == 1
    decision = "orchestrator_approval_time_to_decision_seconds"
    assert sample_value(families, decision, decision + "_count", approver_role="manager", decision="approve") == 1

    for row in Task.objects.values("to_role", "status").distinct():
        expected = Task.objects.filter(**row).count()
        assert sample_value(families, "orchestrator_tasks", role=row["to_role"], status=row["status"]) == expected
    assert sample_value(families, "orchestrator_tasks", role="engineering", status="pending") == 3
    assert sample_value(families, "orchestrator_tasks", role="engineering", status="claimed") == 1
    assert sample_value(families, "orchestrator_task_oldest_pending_age_seconds", role="engineering") > 0
    assert (
        sample_value(families, "orchestrator_approvals_pending", approver_role="manager")
        == (Approval.objects.filter(status="pending", approver_role="manager").count())
        == 1
    )
    assert sample_value(families, "orchestrator_approval_oldest_pending_age_seconds", approver_role="manager") > 0
    unsealed = AuditEvent.objects.filter(seal_seq__isnull=True).count()
    assert unsealed > 0
    assert sample_value(families, "orchestrator_audit_unsealed_events") == unsealed
    assert sample_value(families, "orchestrator_audit_seal_lag_seconds") > 0
    assert (
        sample_value(families, "orchestrator_idempotency_records", state="live")
        == IdempotencyRecord.objects.count()
        == 1
    )
    for source in ("tasks", "approvals", "audit", "idempotency"):
        assert sample_value(families, "orchestrator_gauge_source_up", source=source) == 1


def test_the_page_is_shut_without_the_metrics_token(live_server_with_metrics, issue_token):
    server = live_server_with_metrics
    staff_token = issue_token("operations", staff=True)

    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-of-the-right-length-000000"},
        {"Authorization": f"Bearer {staff_token}"},
        {"Authorization": f"Basic {server.metrics_token}"},
        {"Authorization": f"Bearer {server.metrics_token}x"},
        {"Authorization": "Bearer "},
    ):
        answer = server.request("GET", "/metrics", headers=headers)
        assert answer.status == 401, (headers, answer.body)
        assert answer.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert b"orchestrator_" not in answer.body
    assert server.request("POST", "/metrics", headers={"Authorization": f"Bearer {server.metrics_token}"}).status == 405
    assert server.request("GET", "/metrics", headers={"Authorization": f"Bearer {server.metrics_token}"}).status == 200
