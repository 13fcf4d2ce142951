"""An agent of the target role claims a task, then completes or fails it; the sender may cancel it."""

from audit.models import AuditEvent
from routing.models import Task


def events_for(task_id):
    return list(AuditEvent.objects.filter(target_id=task_id).order_by("id").values_list("event_type", flat=True))


def test_claiming_a_task_records_the_claimer_and_a_claimed_event(route, engineering):
    task = route()

    response = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "claimed"
    assert response.json()["claimed_by"] == engineering.token.subject
    assert events_for(task["task_id"]) == ["task.routed", "task.claimed"]


def claim(agent, task):
    return agent.post(f"/api/v1/tasks/{task['task_id']}/claim").json()["lease_token"]


def test_completing_stores_the_result_and_finishes_the_task(route, engineering):
    task = route()
    lease = claim(engineering, task)

    response = engineering.post(
        f"/api/v1/tasks/{task['task_id']}/complete", {"result": {"ok": True}, "lease_token": lease}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["result"]) == ("completed", {"ok": True})
    assert body["finished_at"] is not None
    assert events_for(task["task_id"])[-1] == "task.completed"


def test_failing_stores_the_error(route, engineering):
    task = route()
    lease = claim(engineering, task)

    response = engineering.post(
        f"/api/v1/tasks/{task['task_id']}/fail", {"error": "ledger offline", "lease_token": lease}, format="json"
    )

    assert (response.json()["status"], response.json()["error"]) == ("failed", "ledger offline")
    assert events_for(task["task_id"])[-1] == "task.failed"


def test_claim_bodies_are_optional_and_a_result_too(route, engineering):
    task = route()

    lease = claim(engineering, task)
    assert (
        engineering.post(f"/api/v1/tasks/{task['task_id']}/complete", {"lease_token": lease}, format="json").json()[
            "result"
        ]
        is None
    )


def test_the_sending_role_may_cancel_a_pending_task(route, finance):
    task = route()

    response = finance.post(f"/api/v1/tasks/{task['task_id']}/cancel", {"reason": "duplicate"}, format="json")

    assert response.json()["status"] == "cancelled"
    event = AuditEvent.objects.get(target_id=task["task_id"], event_type="task.cancelled")
    assert event.metadata["reason"] == "duplicate"


def test_claim_next_hands_out_the_oldest_pending_task_first(route, engineering):
    first, second = route(), route()

    claimed = engineering.post("/api/v1/tasks/claim-next")

    assert claimed.status_code == 200
    assert claimed.json()["task_id"] == first["task_id"]
    assert engineering.post("/api/v1/tasks/claim-next").json()["task_id"] == second["task_id"]


def test_claim_next_answers_204_when_the_inbox_is_empty(route, engineering):
    route(to_role="support")

    response = engineering.post("/api/v1/tasks/claim-next")

    assert response.status_code == 204
    assert response.content == b""


def test_claim_next_passes_over_tasks_awaiting_approval(route, engineering):
    route(requires_approval=True, approver_role="manager")
    ready = route()

    assert engineering.post("/api/v1/tasks/claim-next").json()["task_id"] == ready["task_id"]
    assert engineering.post("/api/v1/tasks/claim-next").status_code == 204


def test_claim_next_for_another_role_is_forbidden_to_an_agent(route, engineering):
    route(to_role="support")

    assert engineering.post("/api/v1/tasks/claim-next?to_role=support").status_code == 403
    assert Task.objects.get().status == "pending"
