"""Deciding approvals: approve releases the task, reject cancels it, and a decision is final."""

import datetime

import pytest
from django.utils import timezone

from approvals.models import Approval
from audit.models import AuditEvent
from routing.models import Task


@pytest.fixture
def gated(route):
    body = route(requires_approval=True, approver_role="manager")
    return body["task_id"], body["approval_id"]


def decide(agent, approval_id, decision, **fields):
    return agent.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": decision, **fields}, format="json")


def snapshot(task_id, approval_id):
    approval = Approval.objects.get(pk=approval_id)
    return (
        Task.objects.get(pk=task_id).status,
        approval.status,
        approval.decided_by,
        approval.updated_at,
        AuditEvent.objects.count(),
    )


def test_approving_returns_the_task_to_pending_and_records_the_decider(gated, manager):
    task_id, approval_id = gated

    response = decide(manager, approval_id, "approve", notes="within budget")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["task_status"], body["notes"]) == ("approved", "pending", "within budget")
    assert body["decided_by"] == manager.token.subject
    event = AuditEvent.objects.get(event_type="approval.decided")
    assert event.trace_id == Task.objects.get(pk=task_id).trace_id
    assert event.metadata["decision"] == "approve"


def test_rejecting_cancels_the_task(gated, manager):
    task_id, approval_id = gated

    assert decide(manager, approval_id, "reject").json()["task_status"] == "cancelled"
    assert Task.objects.get(pk=task_id).status == "cancelled"
    assert AuditEvent.objects.filter(target_id=task_id, event_type="task.cancelled").exists()


def test_deciding_twice_answers_409_and_changes_nothing(gated, manager):
    task_id, approval_id = gated
    decide(manager, approval_id, "approve")
    before = snapshot(task_id, approval_id)

    response = decide(manager, approval_id, "reject")

    assert response.status_code == 409
    assert response.json()["current_status"] == "approved"
    assert response.json()["allowed_transitions"] == []
    assert snapshot(task_id, approval_id) == before


def test_deciding_an_expired_approval_answers_409_and_changes_nothing(gated, manager):
    task_id, approval_id = gated
    Approval.objects.filter(pk=approval_id).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    before = snapshot(task_id, approval_id)

    response = decide(manager, approval_id, "approve")

    assert response.status_code == 409
    assert response.json()["current_status"] == "expired"
    assert snapshot(task_id, approval_id) == before


def test_deciding_an_approval_the_job_already_expired_answers_409(gated, manager):
    from approvals.services import expire_approvals

    task_id, approval_id = gated
    expire_approvals(now=timezone.now() + datetime.timedelta(days=365))
    before = snapshot(task_id, approval_id)

    assert decide(manager, approval_id, "approve").status_code == 409
    assert snapshot(task_id, approval_id) == before


def test_only_the_approver_role_decides(gated, finance, make_agent):
    task_id, approval_id = gated
    before = snapshot(task_id, approval_id)

    assert decide(finance, approval_id, "approve").status_code == 403
    assert decide(make_agent("marketing"), approval_id, "approve").status_code == 404
    assert snapshot(task_id, approval_id) == before


def test_an_unknown_decision_answers_400(gated, manager):
    assert decide(manager, gated[1], "maybe").status_code == 400


def test_an_approval_requested_later_puts_a_pending_task_on_hold(route, finance):
    task = route()

    response = finance.post(
        "/api/v1/approvals", {"task_id": task["task_id"], "approver_role": "manager", "expires_in": 60}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["task_status"]) == ("pending", "awaiting_approval")
    assert 55 <= (datetime.datetime.fromisoformat(body["expires_at"]) - timezone.now()).total_seconds() <= 60


def test_the_default_deadline_is_approval_timeout_seconds(route, finance, settings):
    settings.APPROVAL_TIMEOUT_SECONDS = 120
    task = route()

    body = finance.post(
        "/api/v1/approvals", {"task_id": task["task_id"], "approver_role": "manager"}, format="json"
    ).json()

    remaining = (datetime.datetime.fromisoformat(body["expires_at"]) - timezone.now()).total_seconds()
    assert 110 <= remaining <= 120


def test_a_second_approval_on_a_task_already_on_hold_answers_409(gated, finance):
    task_id, _ = gated

    response = finance.post("/api/v1/approvals", {"task_id": task_id, "approver_role": "support"}, format="json")

    assert response.status_code == 409
    assert Approval.objects.count() == 1


def test_the_pending_queue_lists_only_decidable_approvals_for_the_approver_role(route, manager):
    live = route(requires_approval=True, approver_role="manager")
    overdue = route(requires_approval=True, approver_role="manager")
    route(requires_approval=True, approver_role="support")
    Approval.objects.filter(pk=overdue["approval_id"]).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    pending = manager.get("/api/v1/approvals?status=pending&approver_role=manager").json()["approvals"]
    expired = manager.get("/api/v1/approvals?status=expired").json()["approvals"]

    assert [a["approval_id"] for a in pending] == [live["approval_id"]]
    assert [a["approval_id"] for a in expired] == [overdue["approval_id"]]
    assert expired[0]["status"] == "expired"
