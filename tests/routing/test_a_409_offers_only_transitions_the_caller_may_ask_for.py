"""A task's 409 names as allowed_transitions only the statuses its caller may move the task to through
the API: the receiving role claims and, holding the lease, completes, fails or gives back; the sending
role cancels; staff requeue and act for both roles. What happens to a task (an approval's decision, a
passed lease or deadline, a take-over) is never offered, nor is the transition just refused.

Found by an outside review: the list was every transition the state machine had from the current
status, whoever asked: the sender cancelling a task awaiting approval was offered "cancelled, pending"
(what it was refused, and what only the approval decides), an agent claiming a failed task was offered
"pending" (staff-only requeue), and internal transitions showed up everywhere.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator.identity.principal import Principal
from routing.models import Task, TaskStatus
from routing.services import allowed_targets

WORKER = Principal(subject="test:worker", role="engineering")
SENDER = Principal(subject="test:sender", role="finance")
STAFF = Principal(subject="test:staff", role="operations", is_staff=True)

# What each caller may ask for from each status of a task finance routed to engineering.
OFFERED = {
    TaskStatus.PENDING: {WORKER: ["claimed"], SENDER: ["cancelled"], STAFF: ["cancelled", "claimed"]},
    TaskStatus.AWAITING_APPROVAL: {WORKER: [], SENDER: [], STAFF: []},
    TaskStatus.CLAIMED: {
        WORKER: ["completed", "failed", "pending"],
        SENDER: ["cancelled"],
        STAFF: ["cancelled", "completed", "failed", "pending"],
    },
    TaskStatus.COMPLETED: {WORKER: [], SENDER: [], STAFF: []},
    TaskStatus.FAILED: {WORKER: [], SENDER: [], STAFF: ["pending"]},
    TaskStatus.CANCELLED: {WORKER: [], SENDER: [], STAFF: []},
}


@pytest.mark.parametrize(
    "status,principal,offered",
    [(status, principal, offered) for status, by in OFFERED.items() for principal, offered in by.items()],
    ids=lambda value: getattr(value, "subject", str(value)),
)
def test_each_caller_is_offered_exactly_the_transitions_it_may_ask_for(status, principal, offered):
    task = Task(type="t", from_role="finance", to_role="engineering", status=status)

    assert allowed_targets(task, principal=principal) == offered


def test_a_claimer_known_not_to_hold_the_lease_is_offered_no_claimers_transition():
    task = Task(type="t", from_role="finance", to_role="engineering", status=TaskStatus.CLAIMED)

    assert allowed_targets(task, principal=WORKER, holds_lease=False) == []
    assert allowed_targets(task, principal=STAFF, holds_lease=False) == ["cancelled", "completed", "failed", "pending"]


def test_the_sender_cancelling_a_task_awaiting_approval_is_offered_nothing(route, finance):
    task = route(requires_approval=True, approver_role="manager")

    response = finance.post(f"/api/v1/tasks/{task['task_id']}/cancel")

    assert response.status_code == 409
    assert response.json()["allowed_transitions"] == []


def test_an_agent_claiming_a_failed_task_is_not_offered_the_staff_requeue(route, engineering, staff):
    task = route()
    lease = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim").json()["lease_token"]
    engineering.post(f"/api/v1/tasks/{task['task_id']}/fail", {"lease_token": lease}, format="json")

    by_agent = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")
    by_staff = staff.post(f"/api/v1/tasks/{task['task_id']}/claim")

    assert (by_agent.status_code, by_agent.json()["allowed_transitions"]) == (409, [])
    assert (by_staff.status_code, by_staff.json()["allowed_transitions"]) == (409, ["pending"])


def test_the_receiving_role_completing_a_pending_task_is_offered_the_claim_not_the_senders_cancel(route, engineering):
    task = route()

    response = engineering.post(f"/api/v1/tasks/{task['task_id']}/complete", {"lease_token": "x"}, format="json")

    assert response.status_code == 409
    assert response.json()["allowed_transitions"] == ["claimed"]


def test_an_agent_whose_lease_was_taken_over_is_offered_nothing(route, engineering, make_agent):
    task = route()
    lease = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim").json()["lease_token"]
    Task.objects.filter(pk=task["task_id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert make_agent("engineering").post(f"/api/v1/tasks/{task['task_id']}/claim").status_code == 200

    response = engineering.post(f"/api/v1/tasks/{task['task_id']}/complete", {"lease_token": lease}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["type"].endswith("/lease_superseded")
    assert body["allowed_transitions"] == []


def test_claiming_a_task_past_its_deadline_does_not_offer_the_claim_back(route, engineering):
    task = route(deadline=(timezone.now() + timedelta(hours=1)).isoformat())
    Task.objects.filter(pk=task["task_id"]).update(deadline=timezone.now() - timedelta(seconds=1))

    response = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")

    assert response.status_code == 409
    assert response.json()["allowed_transitions"] == []


def test_staff_are_never_offered_what_happens_to_a_task_on_its_own(route, engineering, staff):
    task = route()
    engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")

    response = staff.post(f"/api/v1/tasks/{task['task_id']}/requeue")

    # Not "claimed" (a take-over is a claim after the lease passed, not something asked of a claimed task).
    assert response.status_code == 409
    assert response.json()["allowed_transitions"] == ["cancelled", "completed", "failed", "pending"]
