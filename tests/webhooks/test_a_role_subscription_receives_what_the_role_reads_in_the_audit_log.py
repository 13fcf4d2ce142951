"""A subscription with a role receives exactly the events an agent of that role reads in the audit
log (GET /api/v1/audit: filed under the role or shared with it), and redelivery allows the same.

Found by an outside review: the role filter took events filed under the role or naming it as
`approver_role`, and ignored `metadata.shared_with_role`. Approval events are filed under the
approver role and shared with the task's from_role, so a finance subscription never heard that
finance's task was approved; task events are filed under from_role and shared with to_role, so an
engineering subscription never heard of a task routed to engineering. Redelivering those events was
refused as "not recorded in role"."""

import time

import pytest
from rest_framework.exceptions import ValidationError

from audit.models import AuditEvent
from webhooks import services

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ("finance", "engineering", "manager", "support")


def deliver_everything():
    """Passes until one delivers nothing more (each pass sends every due event in order)."""
    deadline = time.monotonic() + 20
    while services.deliver_webhooks():
        assert time.monotonic() < deadline, "the dispatcher did not settle in time"


def audit_ids_seen_by(agent, *, after_id):
    response = agent.get("/api/v1/audit", {"limit": 200})
    assert response.status_code == 200, response.content
    assert response.json()["next_cursor"] is None
    return {event["event_id"] for event in response.json()["events"] if event["event_id"] > after_id}


@pytest.fixture
def approved_task(route, manager):
    """A task finance routes to engineering, gated on a manager's approval, which a manager grants."""
    routed = route(to_role="engineering", requires_approval=True, approver_role="manager")
    decided = manager.post(
        f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json"
    )
    assert decided.status_code == 200, decided.content
    return routed


def test_finance_hears_its_task_approved_and_engineering_hears_the_task_routed_to_it(receiver, route, manager):
    finance_rx, engineering_rx = receiver(), receiver()
    services.create_subscription(actor="t", url=finance_rx.url, event_types=["approval.*", "task.*"], role="finance")
    services.create_subscription(actor="t", url=engineering_rx.url, event_types=["task.*"], role="engineering")
    routed = route(to_role="engineering", requires_approval=True, approver_role="manager")
    manager.post(f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json")

    deliver_everything()

    finance_types = {payload["type"] for _, payload in finance_rx.accepted}
    engineering_types = {payload["type"] for _, payload in engineering_rx.accepted}
    assert {"approval.requested", "approval.decided", "task.routed"} <= finance_types
    assert "task.routed" in engineering_types
    assert not any(kind.startswith("approval.") for kind in engineering_types)


def test_each_role_subscription_gets_exactly_what_the_audit_api_shows_that_roles_agent(
    receiver, route, make_agent, approved_task
):
    agents = {role: make_agent(role) for role in ROLES}
    receivers = {role: receiver() for role in ROLES}
    for role in ROLES:
        services.create_subscription(actor="t", url=receivers[role].url, event_types=["*"], role=role)
    subscribed_at = AuditEvent.objects.order_by("-id").values_list("id", flat=True)[0]
    routed = route(to_role="engineering", requires_approval=True, approver_role="manager")
    agents["manager"].post(
        f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json"
    )
    route(to_role="support")  # engineering and manager must hear nothing of this one
    claimed = agents["engineering"].post("/api/v1/tasks/claim-next")
    assert claimed.status_code == 200, claimed.content

    deliver_everything()

    for role in ROLES:
        delivered = {int(webhook_id) for webhook_id, _ in receivers[role].accepted}
        assert delivered == audit_ids_seen_by(agents[role], after_id=subscribed_at), role
        assert delivered, role


def test_redelivery_sends_what_the_role_reads_and_refuses_what_it_does_not(receiver, approved_task):
    rx = receiver()
    for_finance = services.create_subscription(actor="t", url=rx.url, event_types=["approval.*"], role="finance")
    for_engineering = services.create_subscription(actor="t", url=rx.url, event_types=["*"], role="engineering")
    for_support = services.create_subscription(actor="t", url=rx.url, event_types=["*"], role="support")
    decided = AuditEvent.objects.get(event_type="approval.decided")
    routed = AuditEvent.objects.get(event_type="task.routed", target_id=approved_task["task_id"])

    services.redeliver_event(subscription_id=for_finance.pk, event_id=decided.id, actor="staff")
    services.redeliver_event(subscription_id=for_engineering.pk, event_id=routed.id, actor="staff")
    with pytest.raises(ValidationError) as refused:
        services.redeliver_event(subscription_id=for_support.pk, event_id=routed.id, actor="staff")

    assert [headers["webhook-id"] for headers, _ in rx.requests] == [str(decided.id), str(routed.id)]
    message = " ".join(str(line) for line in refused.value.detail["event_id"])
    assert "'finance'" in message and "'support'" in message
    assert "audit log" in message
