from audit.models import AuditEvent
from sessions.models import Session


def test_creating_a_session_returns_201_with_its_id_and_pending_status(finance):
    response = finance.post("/api/v1/sessions", {"role": "finance", "metadata": {"k": 1}}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["metadata"] == {"k": 1}
    assert response["Location"] == f"/api/v1/sessions/{body['session_id']}"
    assert Session.objects.filter(pk=body["session_id"]).exists()


def test_creating_a_session_writes_a_created_audit_event_with_the_trace_id(finance):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID="trace-abc")

    assert response["X-Trace-Id"] == "trace-abc"
    event = AuditEvent.objects.get(target_id=response.json()["session_id"])
    assert event.event_type == "session.created"
    assert event.trace_id == "trace-abc"
    assert event.actor == finance.token.subject
    assert event.role == "finance"


def test_reading_a_session_returns_every_documented_field(finance):
    created = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()

    response = finance.get(f"/api/v1/sessions/{created['session_id']}")

    assert response.status_code == 200
    assert set(response.json()) >= {"session_id", "role", "task_id", "status", "created_at", "updated_at", "metadata"}
    assert response["ETag"].startswith('W/"')


def test_a_trace_id_is_generated_when_the_caller_sends_none(finance):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json")

    assert len(response["X-Trace-Id"]) == 32
    assert AuditEvent.objects.get(target_id=response.json()["session_id"]).trace_id == response["X-Trace-Id"]
