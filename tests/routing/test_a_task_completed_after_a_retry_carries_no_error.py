"""A task completed on a later attempt carries no error: the retry's error was that attempt's, and the
retry's task.retry_scheduled event keeps it. Found by an outside review: `status: completed` came back with the
earlier attempt's `error` beside the result, which a consumer reads as a failure."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from routing.models import Task


def test_completing_after_a_retry_clears_the_earlier_error(route, engineering):
    task_id = route()["task_id"]
    first = engineering.post(f"/api/v1/tasks/{task_id}/claim").json()["lease_token"]
    engineering.post(
        f"/api/v1/tasks/{task_id}/fail", {"error": {"msg": "boom"}, "retry": True, "lease_token": first}, format="json"
    )
    Task.objects.filter(pk=task_id).update(not_before=timezone.now() - timedelta(seconds=1))
    second = engineering.post(f"/api/v1/tasks/{task_id}/claim").json()["lease_token"]

    done = engineering.post(
        f"/api/v1/tasks/{task_id}/complete", {"result": {"ok": True}, "lease_token": second}, format="json"
    ).json()

    assert (done["status"], done["result"], done["error"]) == ("completed", {"ok": True}, None)
    retry = AuditEvent.objects.get(target_id=task_id, event_type="task.retry_scheduled")
    assert retry.metadata["error"] == {"msg": "boom"}
