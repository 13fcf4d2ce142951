"""A real gunicorn writing JSON logs: one valid JSON line per request with the trace id, route, status,
duration and caller; the traceparent's trace id reaches the audit event, the log line and the response;
no token and no body ever reaches the log."""

import json
import re

import pytest

from audit.models import AuditEvent
from tests.observability.conftest import request_lines

pytestmark = pytest.mark.django_db(transaction=True)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
BODY_MARKER = "body-marker-that-must-stay-out-of-logs"


def test_a_traceparent_trace_id_is_in_the_response_the_audit_event_and_the_log_line(
    live_server_with_metrics, issue_token
):
    server = live_server_with_metrics
    token = issue_token("finance")

    answer = server.request(
        "POST",
        "/api/v1/sessions",
        body={"role": "finance", "metadata": {"note": BODY_MARKER}},
        headers={"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
    )

    assert answer.status == 201, answer.body
    assert answer.headers["x-trace-id"] == TRACE_ID
    version, trace_id, span_id, flags = answer.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert re.fullmatch(r"[0-9a-f]{16}", span_id) and span_id not in ("00f067aa0ba902b7", "0" * 16)
    session_id = answer.json()["session_id"]
    event = AuditEvent.objects.get(event_type="session.created", target_id=session_id)
    assert event.trace_id == TRACE_ID
    lines = server.log_lines_once(lambda lines: any(TRACE_ID in line for line in lines))
    [line] = [line for line in request_lines(lines) if line["trace_id"] == TRACE_ID]
    assert line["route"] == "sessions"
    assert line["method"] == "POST"
    assert line["status"] == 201
    assert line["duration_ms"] > 0
    assert line["principal"].startswith("token:")
    assert line["role"] == "finance"
    assert line["level"] == "INFO"
    assert "timestamp" in line


def test_every_log_line_is_json_and_none_holds_a_token_or_a_body(live_server_with_metrics, issue_token):
    server = live_server_with_metrics
    token = issue_token("finance")
    as_finance = {"Authorization": f"Bearer {token}"}

    server.request(
        "POST", "/api/v1/sessions", body={"role": "finance", "metadata": {"k": BODY_MARKER}}, headers=as_finance
    )
    server.request("POST", "/api/v1/sessions", body={"role": "nope", "x": BODY_MARKER}, headers=as_finance)
    server.request("GET", f"/api/v1/sessions?role={BODY_MARKER}", headers=as_finance)
    server.request("GET", "/api/v1/sessions", headers={"Authorization": f"Bearer {token}x"})
    server.request("GET", "/api/v1/sessions", headers={"Authorization": "Bearer orch_not-a-real-token-000000000"})
    server.request("GET", "/metrics", headers={"Authorization": f"Bearer {server.metrics_token}"})
    server.request("GET", "/metrics", headers={"Authorization": f"Bearer {server.metrics_token}-wrong"})
    server.request("GET", "/no/such/page", headers=as_finance)

    expected = {
        ("sessions", 201),
        ("sessions", 400),
        ("sessions", 401),
        ("metrics", 200),
        ("metrics", 401),
        ("unmatched", 404),
    }
    # Both conditions waited for: each worker writes its lines in batches, and the set of (route,
    # status) pairs can be whole while a second line of one pair is still held back.
    lines = server.log_lines_once(
        lambda lines: (
            expected <= {(line["route"], line["status"]) for line in request_lines(lines)}
            and len(request_lines(lines)) >= 8
        )
    )
    text = server.log.read_text()
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    for secret in (token, token[len("orch_") :], server.metrics_token, "orch_not-a-real-token", BODY_MARKER):
        assert secret not in text
    assert expected <= {(line["route"], line["status"]) for line in request_lines(lines)}
    assert len(request_lines(lines)) >= 8


def test_a_malformed_traceparent_is_ignored_and_a_fresh_trace_starts(live_server_with_metrics, issue_token):
    server = live_server_with_metrics
    token = issue_token("finance")

    answer = server.request(
        "POST",
        "/api/v1/sessions",
        body={"role": "finance"},
        headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01"},
    )

    assert answer.status == 201
    assert answer.headers["x-trace-id"] != TRACE_ID.upper()
    assert answer.headers["traceparent"].split("-")[1] == answer.headers["x-trace-id"]
