"""Reminders and escalation, driven by the real jobs (the Celery tasks beat runs) with short lifetimes."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import jobs
from approvals.models import Approval
from audit.models import AuditEvent
from routing.models import Task


def run(job):
    result = job.apply()
    assert result.successful(), result.traceback
    return result.result


def request(finance, task_id, **fields):
    return finance.post("/api/v1/approvals", {"task_id": task_id, "approver_role": "manager", **fields}, format="json")


def approval_events(approval_id, event_type):
    return list(AuditEvent.objects.filter(target_id=approval_id, event_type=event_type).order_by("id"))


def wait_until(moment):
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def test_reminders_come_once_at_each_fraction_of_the_lifetime(route, finance, settings):
    settings.APPROVAL_REMINDER_FRACTIONS = [0.5, 0.9]
    approval_id = request(finance, route()["task_id"], expires_in=2).json()["approval_id"]
    approval = Approval.objects.get(pk=approval_id)

    assert run(jobs.remind_approvals) == 0
    wait_until(approval.level_started_at + timedelta(seconds=1))
    assert run(jobs.remind_approvals) == 1
    assert run(jobs.remind_approvals) == 0  # once per fraction, however often the job runs
    wait_until(approval.level_started_at + timedelta(seconds=1.8))
    assert run(jobs.remind_approvals) == 1
    assert run(jobs.remind_approvals) == 0

    reminders = approval_events(approval_id, "approval.reminder")
    assert [r.metadata["fraction"] for r in reminders] == [0.5, 0.9]
    assert {r.metadata["approver_role"] for r in reminders} == {"manager"}
    assert all(r.role == "manager" for r in reminders)


def test_a_job_that_ran_late_sends_each_missed_fraction_once_in_order(route, finance, settings):
    settings.APPROVAL_REMINDER_FRACTIONS = [0.5, 0.25]  # order in the setting does not matter
    approval_id = request(finance, route()["task_id"], expires_in=4).json()["approval_id"]
    wait_until(Approval.objects.get(pk=approval_id).level_started_at + timedelta(seconds=2))

    assert run(jobs.remind_approvals) == 2

    assert [r.metadata["fraction"] for r in approval_events(approval_id, "approval.reminder")] == [0.25, 0.5]


def test_at_expiry_the_approval_escalates_with_a_fresh_deadline_then_expires_when_the_chain_ends(
    route, finance, manager, make_agent, settings
):
    settings.APPROVAL_REMINDER_FRACTIONS = [0.5]
    routed = route()
    created = request(finance, routed["task_id"], expires_in=2, escalate_to=["operations"])
    assert created.status_code == 201, created.content
    approval_id = created.json()["approval_id"]
    first_deadline = Approval.objects.get(pk=approval_id).expires_at
    wait_until(first_deadline)

    # Past the deadline, before the job: it reads as pending (it will escalate), and nobody can decide it.
    assert finance.get(f"/api/v1/approvals/{approval_id}").json()["status"] == "pending"
    late = manager.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": "approve"}, format="json")
    assert late.status_code == 409
    assert run(jobs.expire_approvals) == 1

    escalated = Approval.objects.get(pk=approval_id)
    assert (escalated.status, escalated.approver_role, escalated.escalate_to, escalated.escalation_level) == (
        "pending",
        "operations",
        [],
        1,
    )
    assert escalated.expires_at >= first_deadline + timedelta(seconds=2)
    assert Task.objects.get(pk=routed["task_id"]).status == "awaiting_approval"
    [event] = approval_events(approval_id, "approval.escalated")
    assert event.metadata["before"] == {"approver_role": "manager"}
    assert event.metadata["approver_role"] == "operations"
    # The old level's people no longer decide; the new one's reminders start afresh.
    assert (
        manager.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": "approve"}, format="json").status_code
        == 404
    )
    wait_until(escalated.level_started_at + timedelta(seconds=1))
    assert run(jobs.remind_approvals) == 1
    assert approval_events(approval_id, "approval.reminder")[-1].metadata["level"] == 1

    wait_until(escalated.expires_at)
    assert run(jobs.expire_approvals) == 1

    assert Approval.objects.get(pk=approval_id).status == "expired"
    assert Task.objects.get(pk=routed["task_id"]).status == "cancelled"
    assert run(jobs.expire_approvals) == 0


def test_the_escalated_role_can_decide(route, finance, make_agent):
    approval_id = request(finance, route()["task_id"], expires_in=1, escalate_to=["operations"]).json()["approval_id"]
    time.sleep(1.05)
    run(jobs.expire_approvals)

    operations = make_agent("operations")
    decided = operations.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": "approve"}, format="json")

    assert (decided.status_code, decided.json()["status"]) == (200, "approved")


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        (["finance"], "cannot decide its own approval"),  # the requester's role and the task's from_role
        (["manager"], "twice"),  # already the approver role
        (["operations", "operations"], "twice"),
        (["nobody"], "Unknown role"),
        ([""], "Unknown role"),
        (["support"] * 11, ""),
        ("operations", ""),
    ],
)
def test_a_chain_holding_the_requester_or_a_bad_role_is_refused(route, finance, chain, message):
    routed = route()

    response = request(finance, routed["task_id"], escalate_to=chain)

    assert response.status_code == 400, response.content
    assert response["content-type"].startswith("application/problem+json")
    assert message in response.content.decode()
    assert Task.objects.get(pk=routed["task_id"]).status == "pending"
    assert not Approval.objects.exists()


def test_the_tasks_own_role_cannot_be_in_the_chain_even_when_someone_else_asks(route, make_agent):
    routed = route()  # from finance
    support_staff = make_agent("support", staff=True)

    response = support_staff.post(
        "/api/v1/approvals",
        {"task_id": routed["task_id"], "approver_role": "manager", "escalate_to": ["operations", "finance"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "escalate_to: Role 'finance' is the task's from_role; it cannot decide its own approval."
    )
    # ... nor the requester's own role
    mine = support_staff.post(
        "/api/v1/approvals",
        {"task_id": routed["task_id"], "approver_role": "manager", "escalate_to": ["support"]},
        format="json",
    )
    assert "the requester's role" in mine.json()["detail"]
