"""A failed task whose deadline has passed is not requeued, through the API, the admin's button or the
console: it answers 409 naming the deadline and changes nothing; the admin and the console show the
refusal as a message. A dead letter whose deadline is still ahead is requeued as before.

Found by an outside review: requeue answered 200 "pending" for such a task, which could never run
(claim-next skipped it, claim by id answered 409 "deadline passed", and reclaim_tasks cancelled it
within a minute), because requeue_task cleared not_before and never looked at the deadline.
"""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.utils import timezone

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task

SENDER = Principal(subject="test:sender", role="finance")
WORKER = Principal(subject="test:worker", role="engineering")


def dead_letter(*, deadline_passed):
    task = services.route_task(
        principal=SENDER,
        type="t",
        to_role="engineering",
        trace_id="t",
        max_attempts=1,
        deadline=timezone.now() + timedelta(hours=1),
    ).task
    claimed = services.claim_task(principal=WORKER, task_id=task.pk, trace_id="t")
    services.fail_task(principal=WORKER, task_id=task.pk, trace_id="t", lease_token=claimed.lease_token, retry=True)
    if deadline_passed:
        Task.objects.filter(pk=task.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    return Task.objects.get(pk=task.pk)


def snapshot(task_id):
    task = Task.objects.get(pk=task_id)
    requeued = AuditEvent.objects.filter(target_id=str(task_id), event_type="task.requeued").count()
    return task.status, task.error, task.dead_lettered_at, task.updated_at, requeued


@pytest.fixture
def person(client, db):
    """A staff person who may requeue in the admin (superuser) and in the console."""
    user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="routing", codename__in=["view_task", "change_task"])
    )
    client.force_login(user)
    return client


def test_the_api_answers_409_naming_the_passed_deadline_and_changes_nothing(staff):
    task = dead_letter(deadline_passed=True)
    before = snapshot(task.pk)

    response = staff.post(f"/api/v1/tasks/{task.pk}/requeue")

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["current_status"] == "failed"
    assert body["deadline"] == task.deadline.isoformat()
    assert task.deadline.isoformat() in body["detail"]
    assert body["allowed_transitions"] == []
    assert snapshot(task.pk) == before


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/admin/routing/task/{id}/change/", "requeue failed"),
        ("/dashboard/tasks/{id}/requeue", "was not requeued"),
    ],
    ids=["admin button", "console"],
)
def test_the_admin_and_the_console_show_the_refusal_as_a_message(person, path, says):
    task = dead_letter(deadline_passed=True)
    before = snapshot(task.pk)

    response = person.post(path.format(id=task.pk), {"_fsm_transition_to": "requeue"})

    assert response.status_code == 302
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert any(says in message and "deadline passed" in message for message in shown), shown
    assert snapshot(task.pk) == before


def test_a_dead_letter_whose_deadline_is_ahead_is_still_requeued(staff):
    task = dead_letter(deadline_passed=False)

    response = staff.post(f"/api/v1/tasks/{task.pk}/requeue")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["attempt"]) == ("pending", 0)
