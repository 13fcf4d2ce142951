"""Every claim takes a lease; complete, fail, release and heartbeat need its token (fencing); fail can
retry with backoff; out of attempts a task is a dead letter that staff may requeue."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from routing.models import Task


def post(agent, path, body=None):
    return agent.post(f"/api/v1{path}", body or {}, format="json")


def claim(agent, task_id, **body):
    response = post(agent, f"/tasks/{task_id}/claim", body)
    assert response.status_code == 200, response.content
    return response.json()


def expire_lease(task_id):
    """The claimer's lease ran out (as if lease_seconds had passed)."""
    Task.objects.filter(pk=task_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def events(task_id):
    return list(AuditEvent.objects.filter(target_id=task_id).order_by("id").values_list("event_type", flat=True))


def test_a_claim_answers_the_attempt_the_budget_a_fresh_token_and_the_lease(route, engineering, settings):
    task = route()

    before = timezone.now()
    body = claim(engineering, task["task_id"], lease_seconds=60)

    assert (body["attempt"], body["max_attempts"]) == (1, settings.TASK_MAX_ATTEMPTS)
    assert len(body["lease_token"]) >= 32
    expires = timezone.datetime.fromisoformat(body["lease_expires_at"])
    assert before + timedelta(seconds=59) < expires < timezone.now() + timedelta(seconds=61)


def test_the_default_lease_is_task_lease_seconds(route, engineering, settings):
    settings.TASK_LEASE_SECONDS = 42
    task = route()

    claim(engineering, task["task_id"])

    lease = Task.objects.get(pk=task["task_id"]).lease_expires_at - timezone.now()
    assert timedelta(seconds=40) < lease <= timedelta(seconds=42)


def test_only_the_claimer_is_shown_the_lease_token(route, engineering, make_agent, finance):
    task = route()
    claim(engineering, task["task_id"])

    assert engineering.get(f"/api/v1/tasks/{task['task_id']}").json()["lease_token"]
    assert make_agent("engineering").get(f"/api/v1/tasks/{task['task_id']}").json()["lease_token"] is None
    assert finance.get(f"/api/v1/tasks/{task['task_id']}").json()["lease_token"] is None


def test_a_passed_lease_is_claimed_again_with_the_next_attempt_and_a_new_token(route, engineering, make_agent):
    task = route()
    first = claim(engineering, task["task_id"])
    expire_lease(task["task_id"])
    survivor = make_agent("engineering", name="survivor")

    second = post(survivor, "/tasks/claim-next").json()

    assert (second["task_id"], second["attempt"], second["claimed_by"]) == (
        task["task_id"],
        2,
        survivor.token.subject,
    )
    assert second["lease_token"] != first["lease_token"]
    event = AuditEvent.objects.filter(target_id=task["task_id"], event_type="task.claimed").order_by("id").last()
    assert event.metadata["before"] == {"status": "claimed", "attempt": 1}


def test_a_lease_that_has_not_passed_is_not_claimed_again(route, engineering, make_agent):
    task = route()
    claim(engineering, task["task_id"])
    other = make_agent("engineering")

    assert post(other, "/tasks/claim-next").status_code == 204
    response = post(other, f"/tasks/{task['task_id']}/claim")
    assert response.status_code == 409
    assert response.json()["current_attempt"] == 1


def test_the_superseded_claimer_gets_409_naming_the_current_attempt_and_changes_nothing(route, engineering, make_agent):
    task = route()
    dead = claim(engineering, task["task_id"])
    expire_lease(task["task_id"])
    survivor = make_agent("engineering", name="survivor")
    alive = post(survivor, "/tasks/claim-next").json()
    post(survivor, f"/tasks/{task['task_id']}/complete", {"lease_token": alive["lease_token"], "result": "survivor"})

    for action, body in [
        ("complete", {"result": "late"}),
        ("fail", {"error": "late"}),
        ("release", {}),
        ("heartbeat", {}),
    ]:
        response = post(engineering, f"/tasks/{task['task_id']}/{action}", {"lease_token": dead["lease_token"], **body})
        assert response.status_code == 409, (action, response.content)
        assert response.json()["type"].endswith("/lease_superseded")
        assert response.json()["current_attempt"] == 2
        assert "attempt 2" in response.json()["detail"]

    stored = Task.objects.get(pk=task["task_id"])
    assert (stored.status, stored.result) == ("completed", "survivor")
    assert events(task["task_id"]).count("task.completed") == 1


@pytest.mark.parametrize("token", ["é" * 43, "\u2603", "token\u00a0", "\U0001f600" * 10])
def test_a_lease_token_with_characters_no_token_has_is_not_the_current_one(route, engineering, token):
    task = route()
    claim(engineering, task["task_id"])

    for action, body in [("heartbeat", {}), ("release", {}), ("complete", {"result": "x"}), ("fail", {"error": "x"})]:
        response = post(engineering, f"/tasks/{task['task_id']}/{action}", {"lease_token": token, **body})
        assert response.status_code == 409, (action, response.content)
        assert response.json()["type"].endswith("/lease_superseded")

    assert Task.objects.get(pk=task["task_id"]).status == "claimed"


def test_a_heartbeat_extends_the_lease_and_is_not_audited(route, engineering):
    task = route()
    lease = claim(engineering, task["task_id"], lease_seconds=5)
    audited = AuditEvent.objects.count()

    response = post(
        engineering, f"/tasks/{task['task_id']}/heartbeat", {"lease_token": lease["lease_token"], "lease_seconds": 600}
    )

    assert response.status_code == 200
    stored = Task.objects.get(pk=task["task_id"])
    assert stored.lease_expires_at > timezone.now() + timedelta(seconds=590)
    assert stored.heartbeat_at is not None
    assert AuditEvent.objects.count() == audited


def test_fail_with_retry_puts_the_task_back_after_a_backoff(route, engineering, settings):
    settings.TASK_RETRY_BASE_SECONDS = 100
    task = route()
    lease = claim(engineering, task["task_id"])

    body = post(
        engineering,
        f"/tasks/{task['task_id']}/fail",
        {"lease_token": lease["lease_token"], "error": "flaky", "retry": True},
    ).json()

    assert (body["status"], body["attempt"], body["error"], body["lease_token"]) == ("pending", 1, "flaky", None)
    wait = timezone.datetime.fromisoformat(body["not_before"]) - timezone.now()
    # The first retry waits half to all of the base (jitter).
    assert timedelta(seconds=45) < wait <= timedelta(seconds=100)
    assert post(engineering, "/tasks/claim-next").status_code == 204
    assert events(task["task_id"])[-1] == "task.retry_scheduled"


def test_the_backoff_doubles_with_each_attempt(settings):
    from routing.services import retry_delay_seconds

    settings.TASK_RETRY_BASE_SECONDS = 10
    settings.TASK_RETRY_MAX_SECONDS = 1000
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (10, 1000)]:
        delays = [retry_delay_seconds(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1


def test_fail_with_retry_on_the_last_attempt_dead_letters_the_task(route, engineering, staff):
    task = route(max_attempts=1)
    lease = claim(engineering, task["task_id"])

    body = post(
        engineering,
        f"/tasks/{task['task_id']}/fail",
        {"lease_token": lease["lease_token"], "error": "boom", "retry": True},
    ).json()

    assert body["status"] == "failed"
    assert body["dead_letter"] is True
    assert body["error"] == {"reason": "attempts_exhausted", "last_error": "boom"}
    assert events(task["task_id"])[-1] == "task.dead_lettered"
    listed = staff.get("/api/v1/tasks?to_role=engineering&status=failed&dead_letter=true").json()["tasks"]
    assert [t["task_id"] for t in listed] == [task["task_id"]]


def test_fail_without_retry_fails_for_good_and_is_no_dead_letter(route, engineering):
    task = route()
    lease = claim(engineering, task["task_id"])

    body = post(engineering, f"/tasks/{task['task_id']}/fail", {"lease_token": lease["lease_token"]}).json()

    assert (body["status"], body["dead_letter"]) == ("failed", False)
    assert engineering.get("/api/v1/tasks?dead_letter=true").json()["tasks"] == []


def test_release_gives_the_task_back_without_counting_the_attempt(route, engineering):
    task = route(max_attempts=1)
    for _ in range(3):
        lease = claim(engineering, task["task_id"])
        assert lease["attempt"] == 1
        body = post(engineering, f"/tasks/{task['task_id']}/release", {"lease_token": lease["lease_token"]}).json()
        assert (body["status"], body["attempt"]) == ("pending", 0)

    assert events(task["task_id"])[-1] == "task.released"


def test_staff_complete_without_a_token_and_the_event_says_so(route, engineering, staff):
    task = route()
    claim(engineering, task["task_id"])

    response = post(staff, f"/tasks/{task['task_id']}/complete", {"result": "by hand"})

    assert response.json()["status"] == "completed"
    event = AuditEvent.objects.get(target_id=task["task_id"], event_type="task.completed")
    assert event.metadata["without_lease_token"] is True
    assert event.actor == staff.token.subject


def test_staff_requeue_a_dead_letter_with_a_fresh_attempt_budget(route, engineering, staff):
    task = route(max_attempts=1)
    lease = claim(engineering, task["task_id"])
    post(engineering, f"/tasks/{task['task_id']}/fail", {"lease_token": lease["lease_token"], "retry": True})

    assert post(engineering, f"/tasks/{task['task_id']}/requeue").status_code == 403
    body = post(staff, f"/tasks/{task['task_id']}/requeue").json()

    assert (body["status"], body["attempt"], body["dead_letter"], body["error"]) == ("pending", 0, False, None)
    assert claim(engineering, task["task_id"])["attempt"] == 1
    event = AuditEvent.objects.get(target_id=task["task_id"], event_type="task.requeued")
    assert event.metadata["before"]["error"]["reason"] == "attempts_exhausted"


def test_requeue_of_a_task_that_has_not_failed_answers_409(route, staff):
    task = route()

    assert post(staff, f"/tasks/{task['task_id']}/requeue").status_code == 409


def test_claim_next_takes_the_highest_priority_then_the_oldest(route, engineering):
    low = route(priority=-5)
    normal_old, normal_new = route(), route()
    urgent = route(priority=50)

    order = [post(engineering, "/tasks/claim-next").json()["task_id"] for _ in range(4)]

    assert order == [urgent["task_id"], normal_old["task_id"], normal_new["task_id"], low["task_id"]]


def test_a_task_is_not_claimable_before_not_before(route, engineering):
    later = route(not_before=(timezone.now() + timedelta(hours=1)).isoformat(), priority=100)
    now = route()

    assert post(engineering, "/tasks/claim-next").json()["task_id"] == now["task_id"]
    assert post(engineering, "/tasks/claim-next").status_code == 204
    response = post(engineering, f"/tasks/{later['task_id']}/claim")
    assert response.status_code == 409
    assert "not claimable before" in response.json()["detail"]


def test_a_task_past_its_deadline_is_not_handed_out(route, engineering):
    task = route(deadline=(timezone.now() + timedelta(hours=1)).isoformat())
    Task.objects.filter(pk=task["task_id"]).update(deadline=timezone.now() - timedelta(seconds=1))

    assert post(engineering, "/tasks/claim-next").status_code == 204
    assert post(engineering, f"/tasks/{task['task_id']}/claim").status_code == 409


def test_an_expired_lease_out_of_attempts_is_not_handed_out_again(route, engineering):
    task = route(max_attempts=1)
    claim(engineering, task["task_id"])
    expire_lease(task["task_id"])

    assert post(engineering, "/tasks/claim-next").status_code == 204


def test_route_options_are_stored_and_shown(route):
    body = route(
        priority=7,
        max_attempts=5,
        not_before="2030-01-01T00:00:00Z",
        deadline="2031-01-01T00:00:00+00:00",
    )

    task = Task.objects.get(pk=body["task_id"])
    assert (task.priority, task.max_attempts, task.not_before.year, task.deadline.year) == (7, 5, 2030, 2031)
    assert (body["priority"], body["max_attempts"], body["attempt"]) == (7, 5, 0)


@pytest.mark.parametrize(
    "field,value",
    [
        ("priority", 1000),
        ("priority", -101),
        ("priority", "high"),
        ("priority", 1.5),
        ("max_attempts", 0),
        ("max_attempts", 21),
        ("not_before", "tomorrow-ish"),
        ("not_before", 12),
        ("deadline", "not a time"),
        ("deadline", "2001-01-01T00:00:00Z"),
    ],
)
def test_bad_route_options_answer_400_and_route_nothing(finance, field, value):
    response = post(finance, "/tasks/route", {"type": "t", "to_role": "engineering", field: value})

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]
    assert not Task.objects.exists()


def test_a_deadline_before_not_before_answers_400(finance):
    body = {
        "type": "t",
        "to_role": "engineering",
        "not_before": "2031-01-02T00:00:00Z",
        "deadline": "2031-01-01T00:00:00Z",
    }

    assert post(finance, "/tasks/route", body).status_code == 400


@pytest.mark.parametrize("lease_seconds", [0, -1, 10**9, "soon", 2.5, True])
def test_bad_lease_seconds_answer_400_and_claim_nothing(route, engineering, lease_seconds):
    task = route()

    for path in (f"/tasks/{task['task_id']}/claim", "/tasks/claim-next"):
        response = post(engineering, path, {"lease_seconds": lease_seconds})
        assert response.status_code == 400, response.content
        assert "lease_seconds" in response.json()["errors"]
    assert Task.objects.get(pk=task["task_id"]).status == "pending"


def test_a_heartbeat_with_a_bad_lease_answers_400(route, engineering):
    task = route()
    lease = claim(engineering, task["task_id"])

    for body in ({"lease_token": lease["lease_token"], "lease_seconds": 0}, {}, {"lease_token": ""}):
        assert post(engineering, f"/tasks/{task['task_id']}/heartbeat", body).status_code == 400
