"""Transitions the state machine does not allow answer 409 naming the current status, and change nothing."""

from audit.models import AuditEvent
from routing.models import Task


def snapshot(task_id):
    task = Task.objects.get(pk=task_id)
    return task.status, task.claimed_by, task.result, task.updated_at, AuditEvent.objects.count()


def assert_conflict(response, current_status):
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["current_status"] == current_status
    assert isinstance(body["allowed_transitions"], list)
    return body


def test_claiming_a_task_awaiting_approval_answers_409_and_changes_nothing(route, engineering):
    task = route(requires_approval=True, approver_role="manager")
    before = snapshot(task["task_id"])

    body = assert_conflict(engineering.post(f"/api/v1/tasks/{task['task_id']}/claim"), "awaiting_approval")

    assert "claimed" not in body["allowed_transitions"]
    assert snapshot(task["task_id"]) == before


def test_completing_a_task_claimed_by_another_agent_answers_409_and_changes_nothing(route, engineering, make_agent):
    task = route()
    engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")
    colleague = make_agent("engineering", name="colleague")
    before = snapshot(task["task_id"])

    body = assert_conflict(
        colleague.post(
            f"/api/v1/tasks/{task['task_id']}/complete", {"result": "mine", "lease_token": "guessed"}, format="json"
        ),
        "claimed",
    )

    assert "another agent" in body["detail"]
    assert body["current_attempt"] == 1
    assert snapshot(task["task_id"]) == before


def test_failing_a_task_claimed_by_another_agent_answers_409(route, engineering, make_agent):
    task = route()
    engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")

    assert_conflict(
        make_agent("engineering").post(f"/api/v1/tasks/{task['task_id']}/fail", {"lease_token": "x"}, format="json"),
        "claimed",
    )


def test_completing_without_a_lease_token_answers_400_to_an_agent(route, engineering):
    task = route()
    engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")

    response = engineering.post(f"/api/v1/tasks/{task['task_id']}/complete")

    assert response.status_code == 400
    assert "lease_token" in response.json()["errors"]
    assert Task.objects.get(pk=task["task_id"]).status == "claimed"


def test_claiming_a_claimed_task_again_answers_409(route, engineering, make_agent):
    task = route()
    engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")
    before = snapshot(task["task_id"])

    assert_conflict(make_agent("engineering").post(f"/api/v1/tasks/{task['task_id']}/claim"), "claimed")
    assert snapshot(task["task_id"]) == before


def test_completing_a_pending_task_answers_409_naming_claimed_as_the_way_forward(route, engineering):
    task = route()

    body = assert_conflict(
        engineering.post(f"/api/v1/tasks/{task['task_id']}/complete", {"lease_token": "none"}, format="json"), "pending"
    )

    assert "claimed" in body["allowed_transitions"]


def test_a_finished_task_cannot_be_cancelled(route, engineering, finance):
    task = route()
    lease = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim").json()["lease_token"]
    engineering.post(f"/api/v1/tasks/{task['task_id']}/complete", {"lease_token": lease}, format="json")
    before = snapshot(task["task_id"])

    body = assert_conflict(finance.post(f"/api/v1/tasks/{task['task_id']}/cancel"), "completed")

    assert body["allowed_transitions"] == []
    assert snapshot(task["task_id"]) == before


def test_a_task_awaiting_approval_is_not_cancelled_directly_its_approval_decides(route, finance):
    task = route(requires_approval=True, approver_role="manager")

    assert_conflict(finance.post(f"/api/v1/tasks/{task['task_id']}/cancel"), "awaiting_approval")
    assert Task.objects.get(pk=task["task_id"]).approvals.get().status == "pending"


def test_staff_may_complete_a_task_another_agent_claimed(route, engineering, staff):
    task = route()
    engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")

    assert staff.post(f"/api/v1/tasks/{task['task_id']}/complete").json()["status"] == "completed"
