"""claim-next records exactly the task.claimed event that claiming a task by its id records
(on PostgreSQL the database builds it in the claiming statement; see routing.services)."""

import pytest

from audit.models import AuditEvent

EVENT_FIELDS = ["event_type", "actor", "role", "trace_id", "target_type", "metadata"]


def claimed_event(task_id):
    return AuditEvent.objects.values(*EVENT_FIELDS).get(target_id=task_id, event_type="task.claimed")


@pytest.mark.parametrize("request_trace", ["its-own-trace", "the-task-trace"])
def test_claim_next_writes_the_same_claimed_event_as_claim_by_id(route, engineering, request_trace):
    by_id = route(trace_id="the-task-trace")
    by_next = route(trace_id="the-task-trace")
    headers = {"HTTP_X_TRACE_ID": request_trace}

    assert engineering.post(f"/api/v1/tasks/{by_id['task_id']}/claim", **headers).status_code == 200
    claimed = engineering.post("/api/v1/tasks/claim-next", **headers)

    assert claimed.json()["task_id"] == by_next["task_id"]
    assert claimed_event(by_next["task_id"]) == claimed_event(by_id["task_id"])
    assert claimed_event(by_next["task_id"])["trace_id"] == "the-task-trace"
    assert ("request_trace_id" in claimed_event(by_next["task_id"])["metadata"]) == (request_trace == "its-own-trace")
