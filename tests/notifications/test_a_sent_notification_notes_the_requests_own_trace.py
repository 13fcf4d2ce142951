"""A notification sent under a trace of its own (the body's trace_id) is filed under that trace, and
its event notes the request's trace beside it, as task and ack events do: the request's trace finds
the event (found by an outside review: it was dropped)."""

import pytest

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_the_request_trace_is_noted_beside_the_notifications_own(finance):
    response = finance.post(
        "/api/v1/notifications",
        {"to_role": "manager", "message": "hi", "trace_id": "body-trace"},
        format="json",
        HTTP_X_TRACE_ID="request-trace",
    )

    assert response.status_code == 202
    event = AuditEvent.objects.get(event_type="notification.sent")
    assert event.trace_id == "body-trace"
    assert event.metadata["request_trace_id"] == "request-trace"


def test_one_trace_is_not_noted_twice(finance):
    finance.post("/api/v1/notifications", {"to_role": "manager", "message": "hi"}, format="json", HTTP_X_TRACE_ID="t-1")

    event = AuditEvent.objects.get(event_type="notification.sent")
    assert event.trace_id == "t-1"
    assert "request_trace_id" not in event.metadata
