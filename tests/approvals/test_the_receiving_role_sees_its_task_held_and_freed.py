"""A gate is a transition of the task, with its own task event: the receiving role, which sees none of
the approval's events, sees its task held (task.gated) and released (task.gate_opened) in its audit log,
each under the task's trace and after the decision that caused it (found by an outside review: it saw
only task.routed, saying pending, for a task held and later released)."""

import pytest

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def events_seen_by(agent, trace_id):
    response = agent.get(f"/api/v1/audit?trace_id={trace_id}")
    assert response.status_code == 200
    # The audit API answers newest first.
    events = reversed(response.json()["events"])
    return [(event["event_type"], event["metadata"].get("after", {}).get("status")) for event in events]


def test_a_routed_gate_and_its_approval_show_as_task_events_to_the_receiving_role(route, manager, engineering):
    routed = route(requires_approval=True, approver_role="manager")

    assert events_seen_by(engineering, routed["trace_id"]) == [
        ("task.routed", "pending"),
        ("task.gated", "awaiting_approval"),
    ]

    decision = manager.post(
        f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json"
    )
    assert decision.status_code == 200

    assert events_seen_by(engineering, routed["trace_id"])[-1] == ("task.gate_opened", "pending")
    in_order = list(
        AuditEvent.objects.filter(trace_id=routed["trace_id"]).order_by("id").values_list("event_type", flat=True)
    )
    assert in_order.index("approval.decided") < in_order.index("task.gate_opened")


def test_a_gate_opened_later_by_a_request_is_a_task_event_too(route, finance, engineering):
    routed = route()
    response = finance.post(
        "/api/v1/approvals", {"task_id": routed["task_id"], "approver_role": "manager"}, format="json"
    )
    assert response.status_code == 201

    assert events_seen_by(engineering, routed["trace_id"])[-1] == ("task.gated", "awaiting_approval")
