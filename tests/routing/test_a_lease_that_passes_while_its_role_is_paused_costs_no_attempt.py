"""A lease that passes while its role is paused is the pause's doing: the role's agents get 423 on
heartbeat and complete, so their leases run out. reclaim_tasks puts such a task back to pending with
the attempt given back (as a release does), never to the dead letters. Found by an outside review: a
task on its last attempt was dead-lettered by the pause, a failure no agent reported."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from policy.models import ALL_ROLES, RolePause
from routing import reclaim, services
from routing.models import Task

SENDER = Principal(subject="test:sender", role="finance")
WORKER = Principal(subject="test:worker", role="engineering")


def claimed_with_passed_lease(*, max_attempts):
    task = services.route_task(
        principal=SENDER, type="t", to_role="engineering", trace_id="t", max_attempts=max_attempts
    ).task
    services.claim_task(principal=WORKER, task_id=task.pk, trace_id="w")
    Task.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    return task


@pytest.mark.parametrize("paused", ["engineering", ALL_ROLES])
def test_a_last_attempt_whose_lease_passed_during_a_pause_goes_back_to_pending(db, paused):
    task = claimed_with_passed_lease(max_attempts=1)
    RolePause.objects.create(role=paused, paused_by="test")

    counts = reclaim.reclaim_tasks()

    task.refresh_from_db()
    assert counts == {"task.deadline_passed": 0, "task.lease_expired": 1, "task.dead_lettered": 0}
    assert (task.status, task.attempt, task.is_dead_letter, task.lease_token) == ("pending", 0, False, "")
    event = AuditEvent.objects.get(target_id=task.pk, event_type="task.lease_expired")
    assert event.metadata["reason"] == "role_paused"
    assert (event.metadata["before"]["attempt"], event.metadata["after"]["attempt"]) == (1, 0)


def test_after_the_resume_the_task_is_claimed_again_with_its_attempts_whole(db):
    task = claimed_with_passed_lease(max_attempts=1)
    pause = RolePause.objects.create(role="engineering", paused_by="test")
    reclaim.reclaim_tasks()
    pause.delete()

    again = services.claim_task(principal=WORKER, task_id=task.pk, trace_id="w2")

    assert (again.status, again.attempt, again.max_attempts) == ("claimed", 1, 1)


def test_a_pause_of_another_role_changes_nothing(db):
    task = claimed_with_passed_lease(max_attempts=1)
    RolePause.objects.create(role="marketing", paused_by="test")

    counts = reclaim.reclaim_tasks()

    task.refresh_from_db()
    assert counts["task.dead_lettered"] == 1
    assert (task.status, task.error["reason"]) == ("failed", "attempts_exhausted")


def test_a_lease_passing_during_a_pause_on_an_earlier_attempt_gives_that_attempt_back(db):
    task = claimed_with_passed_lease(max_attempts=3)
    RolePause.objects.create(role="engineering", paused_by="test")

    reclaim.reclaim_tasks()

    task.refresh_from_db()
    assert (task.status, task.attempt) == ("pending", 0)
