"""The docs/api.md walk-through end to end: finance routes a task needing approval, a manager
approves it in the admin, an engineering agent claims and completes it; the trace tells it all."""

from approvals.models import Approval
from audit.models import AuditEvent
from routing.models import Task

TRACE = "walkthrough-0001"


def approve_in_admin(admin_client, approval_id):
    queue = admin_client.get("/admin/approvals/approval/?status__exact=pending")
    assert [str(a.pk) for a in queue.context["cl"].result_list] == [approval_id]
    return admin_client.post(
        "/admin/approvals/approval/",
        {"action": "approve", "_selected_action": [approval_id], "post": "yes"},
        follow=True,
    )


def test_a_task_needing_approval_goes_from_routing_to_completion_through_api_and_admin(
    finance, make_agent, manager_in_admin
):
    engineering = make_agent("engineering")

    routed = finance.post(
        "/api/v1/tasks/route",
        {
            "type": "payment.release",
            "to_role": "engineering",
            "payload": {"amount": 12000, "currency": "EUR"},
            "requires_approval": True,
            "approver_role": "manager",
        },
        format="json",
        HTTP_X_TRACE_ID=TRACE,
    ).json()
    assert routed["status"] == "awaiting_approval"
    assert engineering.post("/api/v1/tasks/claim-next").status_code == 204

    response = approve_in_admin(manager_in_admin, routed["approval_id"])
    assert "Approved 1 approval(s)." in [str(m) for m in response.context["messages"]]
    approval = Approval.objects.get(pk=routed["approval_id"])
    assert (approval.status, approval.decided_by) == ("approved", "user:maria")
    decided = AuditEvent.objects.get(event_type="approval.decided")
    assert decided.trace_id == TRACE
    assert decided.metadata["request_trace_id"] != TRACE

    claimed = engineering.post("/api/v1/tasks/claim-next")
    assert claimed.json()["task_id"] == routed["task_id"]
    done = engineering.post(
        f"/api/v1/tasks/{routed['task_id']}/complete",
        {"result": {"paid": True}, "lease_token": claimed.json()["lease_token"]},
        format="json",
    )
    assert done.json()["status"] == "completed"

    steps = list(AuditEvent.objects.filter(trace_id=TRACE).order_by("id").values_list("event_type", "actor"))
    assert steps == [
        ("task.routed", finance.token.subject),
        ("task.gated", finance.token.subject),
        ("approval.requested", finance.token.subject),
        ("approval.decided", "user:maria"),
        ("task.gate_opened", "user:maria"),
        ("task.claimed", engineering.token.subject),
        ("task.completed", engineering.token.subject),
    ]


def test_rejecting_in_the_admin_cancels_the_task(route, manager_in_admin):
    routed = route(requires_approval=True, approver_role="manager")

    manager_in_admin.post(
        "/admin/approvals/approval/", {"action": "reject", "_selected_action": [routed["approval_id"]]}
    )

    assert Approval.objects.get(pk=routed["approval_id"]).status == "rejected"
    assert Task.objects.get(pk=routed["task_id"]).status == "cancelled"


def test_an_admin_decision_on_an_already_decided_approval_is_reported_and_changes_nothing(
    route, manager, manager_in_admin
):
    routed = route(requires_approval=True, approver_role="manager")
    manager.post(f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "reject"}, format="json")
    events = AuditEvent.objects.count()

    response = manager_in_admin.post(
        "/admin/approvals/approval/",
        {"action": "approve", "_selected_action": [routed["approval_id"]], "post": "yes"},
        follow=True,
    )

    assert any("reject" in str(m) for m in response.context["messages"])
    assert Approval.objects.get(pk=routed["approval_id"]).status == "rejected"
    assert AuditEvent.objects.count() == events


def test_staff_cancel_a_task_with_the_admin_button_through_the_service(route, admin_client):
    routed = route()

    admin_client.post(f"/admin/routing/task/{routed['task_id']}/change/", {"_fsm_transition_to": "cancel"})

    assert Task.objects.get(pk=routed["task_id"]).status == "cancelled"
    event = AuditEvent.objects.get(target_id=routed["task_id"], event_type="task.cancelled")
    assert event.actor == "user:admin"
