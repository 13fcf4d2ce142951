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


def test_taking_over_a_passed_lease_writes_the_same_event_by_claim_next_as_by_id(route, engineering, make_agent):
    from datetime import timedelta

    from django.utils import timezone

    from routing.models import Task

    by_id, by_next = route(trace_id="the-task-trace"), route(trace_id="the-task-trace")
    for task in (by_id, by_next):
        engineering.post(f"/api/v1/tasks/{task['task_id']}/claim", {"lease_seconds": 30}, format="json")
    Task.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    survivor = make_agent("engineering", name="survivor")

    headers = {"HTTP_X_TRACE_ID": "the-survivors-trace"}
    survivor.post(f"/api/v1/tasks/{by_id['task_id']}/claim", {"lease_seconds": 30}, format="json", **headers)
    taken = survivor.post("/api/v1/tasks/claim-next", {"lease_seconds": 30}, format="json", **headers).json()

    assert (taken["task_id"], taken["attempt"]) == (by_next["task_id"], 2)

    def takeover_event(task_id):
        return (
            AuditEvent.objects.filter(target_id=task_id, event_type="task.claimed")
            .order_by("id")
            .values(*EVENT_FIELDS)
            .last()
        )

    assert takeover_event(by_next["task_id"]) == takeover_event(by_id["task_id"])
    assert takeover_event(by_next["task_id"])["metadata"]["before"] == {"status": "claimed", "attempt": 1}
    assert takeover_event(by_next["task_id"])["actor"] == survivor.token.subject


def test_claim_next_and_claim_by_id_store_the_same_lease(route, engineering):
    by_id, _ = route(), route()

    one = engineering.post(f"/api/v1/tasks/{by_id['task_id']}/claim", {"lease_seconds": 77}, format="json").json()
    two = engineering.post("/api/v1/tasks/claim-next", {"lease_seconds": 77}, format="json").json()

    from django.utils.dateparse import parse_datetime

    for body in (one, two):
        lease = parse_datetime(body["lease_expires_at"]) - parse_datetime(body["claimed_at"])
        assert lease.total_seconds() == 77
        assert (body["attempt"], body["status"], len(body["lease_token"])) == (1, "claimed", 32)
