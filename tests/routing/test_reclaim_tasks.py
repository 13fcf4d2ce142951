"""reclaim_tasks (job, beat every minute, manage.py reclaim_tasks): passed leases go back to pending or,
out of attempts, become dead letters; open tasks past their deadline are cancelled. Batched and crash-safe."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import reclaim, services
from routing.models import Task
from routing.selectors import queue_stats

SENDER = Principal(subject="test:sender", role="finance")
WORKER = Principal(subject="test:worker", role="engineering")


def routed(count=1, **options):
    return [
        services.route_task(principal=SENDER, type="t", to_role="engineering", trace_id=f"trace-{n}", **options).task
        for n in range(count)
    ]


def claimed(count=1, **options):
    tasks = routed(count, **options)
    return [services.claim_task(principal=WORKER, task_id=task.pk, trace_id="w") for task in tasks]


def pass_leases(tasks):
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(lease_expires_at=timezone.now() - timedelta(seconds=5))


def test_a_passed_lease_goes_back_to_pending_with_its_event(db):
    (task,) = claimed()
    pass_leases([task])

    counts = reclaim.reclaim_tasks()

    assert counts == {"task.deadline_passed": 0, "task.lease_expired": 1, "task.dead_lettered": 0}
    task.refresh_from_db()
    assert (task.status, task.attempt, task.lease_token, task.lease_expires_at) == ("pending", 1, "", None)
    event = AuditEvent.objects.get(target_id=task.pk, event_type="task.lease_expired")
    assert event.metadata["before"] == {"status": "claimed", "attempt": 1}
    assert event.metadata["claimed_by"] == WORKER.subject
    # Filed like every task event: under the sender, shared with the receiving role; a job has no role.
    assert (event.actor, event.trace_id, event.role) == (reclaim.RECLAIM_ACTOR, task.trace_id, task.from_role)
    assert (event.metadata["shared_with_role"], event.metadata["actor_role"]) == ("engineering", "")


def test_a_passed_lease_on_the_last_attempt_is_dead_lettered(db):
    (task,) = claimed(max_attempts=1)
    pass_leases([task])

    reclaim.reclaim_tasks()

    task.refresh_from_db()
    assert (task.status, task.error["reason"], task.is_dead_letter) == ("failed", "attempts_exhausted", True)
    assert task.finished_at is not None
    event = AuditEvent.objects.get(target_id=task.pk, event_type="task.dead_lettered")
    assert event.metadata["reason"] == "attempts_exhausted"


def test_live_leases_and_unclaimed_tasks_are_left_alone(db):
    live = claimed()[0]
    waiting = routed()[0]

    assert reclaim.reclaim_tasks() == {"task.deadline_passed": 0, "task.lease_expired": 0, "task.dead_lettered": 0}
    assert Task.objects.get(pk=live.pk).status == "claimed"
    assert Task.objects.get(pk=waiting.pk).status == "pending"


def test_open_tasks_past_their_deadline_are_cancelled(db):
    soon = timezone.now() + timedelta(minutes=5)
    pending = routed(deadline=soon)[0]
    working = claimed(deadline=soon)[0]
    later = routed(deadline=timezone.now() + timedelta(hours=1))[0]
    Task.objects.filter(pk__in=[pending.pk, working.pk]).update(deadline=timezone.now() - timedelta(seconds=1))
    # A passed lease too: the deadline wins, the task is not handed out again.
    pass_leases([working])

    counts = reclaim.reclaim_tasks()

    assert counts["task.deadline_passed"] == 2
    assert counts["task.lease_expired"] == 0
    for task in (pending, working):
        task.refresh_from_db()
        assert (task.status, task.error) == ("cancelled", {"reason": "deadline", "last_error": None})
        event = AuditEvent.objects.get(target_id=task.pk, event_type="task.deadline_passed")
        assert event.metadata["reason"] == "deadline"
    assert AuditEvent.objects.get(target_id=working.pk, event_type="task.deadline_passed").metadata["before"] == {
        "status": "claimed",
        "attempt": 1,
    }
    assert Task.objects.get(pk=later.pk).status == "pending"


def test_the_dead_claimers_late_complete_after_reclaim_answers_409(db):
    (task,) = claimed()
    pass_leases([task])
    reclaim.reclaim_tasks()

    from orchestrator.http.errors import Conflict

    with pytest.raises(Conflict) as refused:
        services.complete_task(principal=WORKER, task_id=task.pk, trace_id="late", lease_token=task.lease_token)
    assert refused.value.extra["current_attempt"] == 1
    assert Task.objects.get(pk=task.pk).status == "pending"


def test_many_batches_move_every_due_task_exactly_once(db):
    tasks = claimed(25)
    pass_leases(tasks)

    batches = []
    counts = reclaim.reclaim_tasks(batch_size=10, on_batch=lambda kind, n: batches.append((kind, n)))

    assert counts["task.lease_expired"] == 25
    assert batches == [("lease", 10), ("lease", 10), ("lease", 5)]
    assert AuditEvent.objects.filter(event_type="task.lease_expired").count() == 25
    assert Task.objects.filter(status="pending").count() == 25


def test_a_run_that_crashes_after_a_batch_is_finished_by_the_next_run(db):
    tasks = claimed(25)
    pass_leases(tasks)

    def crash(kind, n):
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        reclaim.reclaim_tasks(batch_size=10, on_batch=crash)
    reclaim.reclaim_tasks(batch_size=10)

    assert Task.objects.filter(status="pending").count() == 25
    assert AuditEvent.objects.filter(event_type="task.lease_expired").count() == 25
    ids = list(AuditEvent.objects.filter(event_type="task.lease_expired").values_list("target_id", flat=True))
    assert len(set(ids)) == 25


def test_rows_a_claimer_holds_are_skipped_not_waited_for(transactional_db):
    import threading

    tasks = claimed(3)
    pass_leases(tasks)
    held, release = threading.Event(), threading.Event()

    def hold_one():
        from django.db import transaction

        try:
            with transaction.atomic():
                Task.objects.select_for_update().get(pk=tasks[0].pk)
                held.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_one)
    holder.start()
    held.wait(10)
    try:
        assert reclaim.reclaim_tasks()["task.lease_expired"] == 2
    finally:
        release.set()
        holder.join()
    assert reclaim.reclaim_tasks()["task.lease_expired"] == 1


def test_the_command_reports_what_it_did(db):
    tasks = claimed(2)
    pass_leases(tasks)
    out = StringIO()

    call_command("reclaim_tasks", "--dry-run", stdout=out)
    assert "2 tasks" in out.getvalue()
    assert Task.objects.filter(status="claimed").count() == 2

    call_command("reclaim_tasks", stdout=out)
    assert "returned 2 expired leases to pending" in out.getvalue()


def test_the_job_runs_the_same_service(db):
    from routing.jobs import reclaim_tasks

    tasks = claimed(1)
    pass_leases(tasks)

    assert reclaim_tasks.apply().result["task.lease_expired"] == 1


def test_queue_stats_counts_each_roles_queue_in_one_query_after_reading_the_pauses(db, django_assert_num_queries):
    now = timezone.now()
    routed(2)
    overdue = claimed(2)
    pass_leases(overdue[:1])
    dead = claimed(1, max_attempts=1)
    pass_leases(dead)
    reclaim.reclaim_tasks()  # the dead one becomes a dead letter, the overdue one pending again
    pass_leases(claimed(1))  # overdue, not yet reclaimed
    services.route_task(principal=SENDER, type="t", to_role="support", trace_id="s")
    Task.objects.filter(to_role="support").update(created_at=now - timedelta(hours=2))

    # The pauses (a few rows at most; a paused role's passed leases are not overdue), then the counts.
    with django_assert_num_queries(2):
        stats = {row.role: row for row in queue_stats()}

    engineering = stats["engineering"]
    assert (engineering.pending, engineering.claimed, engineering.overdue_leases, engineering.dead_letters) == (
        3,
        2,
        1,
        1,
    )
    assert engineering.oldest_pending_age < timedelta(minutes=1)
    assert (stats["support"].pending, stats["support"].claimed, stats["support"].dead_letters) == (1, 0, 0)
    assert timedelta(hours=2) <= stats["support"].oldest_pending_age < timedelta(hours=2, minutes=1)
    assert "finance" not in stats
