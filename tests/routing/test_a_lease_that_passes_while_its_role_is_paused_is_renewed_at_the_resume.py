"""A paused role's agents get 423 on heartbeat and complete, so their leases run out through no fault of
theirs. reclaim_tasks leaves a paused role's leases alone, and the resume renews the ones that passed
since the pause began, so their claimers go on with the same lease token. A lease that passed before
the pause (a crashed agent) is reclaimed as any other once the role is resumed.

Found by outside reviews: a task on its last attempt was dead-lettered by the pause; and a first fix
that looked at the pause when reclaim ran, not when the lease passed, still dead-lettered a lease that
passed during a pause lifted before the next reclaim run, and forgave a crash from before the pause."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from policy import services as policy
from policy.models import ALL_ROLES, RolePause
from routing import reclaim, services
from routing.models import Task
from routing.selectors import queue_stats

SENDER = Principal(subject="test:sender", role="finance")
WORKER = Principal(subject="test:worker", role="engineering")
STAFF = Principal(subject="test:staff", role="operations", is_staff=True)


def claimed(*, max_attempts=1):
    task = services.route_task(
        principal=SENDER, type="t", to_role="engineering", trace_id="t", max_attempts=max_attempts
    ).task
    return services.claim_task(principal=WORKER, task_id=task.pk, trace_id="w")


def lease_passed_at(task, moment):
    Task.objects.filter(pk=task.pk).update(lease_expires_at=moment)


def pause(role):
    policy.pause_role(principal=STAFF, role=role, trace_id="p")
    return RolePause.objects.get(role=role).paused_at


def resume(role):
    return policy.resume_role(principal=STAFF, role=role, trace_id="r")


@pytest.mark.parametrize("paused", ["engineering", ALL_ROLES])
def test_reclaim_leaves_a_paused_roles_passed_lease_alone(db, paused):
    task = claimed()
    pause(paused)
    lease_passed_at(task, timezone.now() - timedelta(seconds=5))

    due = reclaim.count_due()
    counts = reclaim.reclaim_tasks()

    assert due == 0
    assert counts == {"task.deadline_passed": 0, "task.lease_expired": 0, "task.dead_lettered": 0}
    task.refresh_from_db()
    assert (task.status, task.attempt) == ("claimed", 1)


@pytest.mark.parametrize("paused", ["engineering", ALL_ROLES])
def test_the_resume_renews_a_lease_that_passed_during_the_pause_and_its_claimer_completes(db, paused):
    task = claimed()
    paused_at = pause(paused)
    lease_passed_at(task, paused_at + timedelta(microseconds=1))

    resume(paused)
    reclaim.reclaim_tasks()
    done = services.complete_task(
        principal=WORKER, task_id=task.pk, trace_id="w", lease_token=task.lease_token, result={"ok": True}
    )

    assert (done.status, done.attempt) == ("completed", 1)
    event = AuditEvent.objects.get(event_type="role.resumed")
    assert event.metadata["leases_renewed"] == 1


def test_a_lease_that_passed_during_a_pause_lifted_before_reclaim_ran_is_not_dead_lettered(db):
    task = claimed()
    paused_at = pause("engineering")
    lease_passed_at(task, paused_at + timedelta(microseconds=1))
    resume("engineering")

    reclaim.reclaim_tasks()

    task.refresh_from_db()
    assert (task.status, task.is_dead_letter) == ("claimed", False)
    assert task.lease_expires_at > timezone.now()


def test_a_lease_that_passed_before_the_pause_is_reclaimed_as_usual_after_it(db):
    task = claimed()
    lease_passed_at(task, timezone.now() - timedelta(hours=1))
    pause("engineering")
    assert reclaim.reclaim_tasks()["task.dead_lettered"] == 0  # left alone while paused

    resume("engineering")
    counts = reclaim.reclaim_tasks()

    task.refresh_from_db()
    assert counts["task.dead_lettered"] == 1
    assert (task.status, task.error["reason"]) == ("failed", "attempts_exhausted")


def test_resuming_one_role_while_every_role_stays_paused_renews_nothing(db):
    task = claimed()
    paused_at = pause("engineering")
    pause(ALL_ROLES)
    lease_passed_at(task, paused_at + timedelta(microseconds=1))

    resume("engineering")

    task.refresh_from_db()
    assert task.lease_expires_at < timezone.now()
    assert AuditEvent.objects.get(event_type="role.resumed").metadata["leases_renewed"] == 0


def test_a_pause_of_another_role_changes_nothing(db):
    task = claimed()
    pause("marketing")
    lease_passed_at(task, timezone.now() - timedelta(seconds=5))

    counts = reclaim.reclaim_tasks()

    assert counts["task.dead_lettered"] == 1


def test_a_long_lease_is_renewed_for_as_long_as_the_claimer_asked(db, settings):
    # A worker beats a third of the way into its lease: renewed for the default alone, a one-hour
    # lease ran out before its next beat (an outside review).
    settings.TASK_LEASE_SECONDS = 60
    task = services.route_task(principal=SENDER, type="t", to_role="engineering", trace_id="t").task
    task = services.claim_task(principal=WORKER, task_id=task.pk, trace_id="w", lease_seconds=3600)
    paused_at = pause("engineering")
    lease_passed_at(task, paused_at + timedelta(microseconds=1))
    Task.objects.filter(pk=task.pk).update(claimed_at=paused_at - timedelta(seconds=3600))

    resume("engineering")

    task.refresh_from_db()
    assert timedelta(seconds=3590) < task.lease_expires_at - timezone.now() <= timedelta(seconds=3600)


def test_a_paused_roles_passed_lease_is_not_counted_overdue(db):
    task = claimed()
    pause("engineering")
    lease_passed_at(task, timezone.now() - timedelta(seconds=5))

    [engineering] = [row for row in queue_stats() if row.role == "engineering"]

    assert (engineering.claimed, engineering.overdue_leases) == (1, 0)


def test_a_renewed_lease_is_measured_from_its_renewal_so_a_second_pause_renews_no_longer(db, settings):
    # The renewal's length is the lease's end less its last heartbeat (or claim): measured from the
    # claim, a second pause's renewal grew by the first pause's length, up to TASK_MAX_LEASE_SECONDS.
    settings.TASK_LEASE_SECONDS = 300
    task = claimed()
    paused_at = pause("engineering")
    lease_passed_at(task, paused_at + timedelta(microseconds=1))

    resume("engineering")

    task.refresh_from_db()
    assert task.heartbeat_at is not None
    assert task.lease_expires_at - task.heartbeat_at == timedelta(seconds=300)
