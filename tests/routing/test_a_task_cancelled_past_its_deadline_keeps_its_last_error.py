"""A task reclaim_tasks cancels past its deadline keeps the error its claimer last reported, as
error.last_error beside reason "deadline" (the shape a dead letter has), on PostgreSQL's one-statement
batch and on the portable batch SQLite runs; its task.deadline_passed event names the same reason.

Found by an outside review: the cancel wrote error = {"reason": "deadline"} over the task's error, so
the agent's report of why its last try failed was lost, while dead-lettering kept it.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import reclaim, services
from routing.models import Task

SENDER = Principal(subject="test:sender", role="finance")
WORKER = Principal(subject="test:worker", role="engineering")
REPORTED = {"type": "Timeout", "message": "the ledger did not answer"}


def on_postgresql():
    reclaim.reclaim_tasks()


def on_the_portable_path():
    # The batch SQLite runs, run here on the test database: the same ORM code either way.
    with transaction.atomic():
        reclaim._deadline_batch_portable(now=timezone.now(), limit=100, run="portable")


def retried_task():
    """A pending task whose claimer failed it for a retry: the error it reported is on the task."""
    task = services.route_task(
        principal=SENDER, type="t", to_role="engineering", trace_id="t", deadline=timezone.now() + timedelta(hours=1)
    ).task
    lease = services.claim_task(principal=WORKER, task_id=task.pk, trace_id="t").lease_token
    services.fail_task(principal=WORKER, task_id=task.pk, trace_id="t", lease_token=lease, error=REPORTED, retry=True)
    return task


def claimed_task():
    task = services.route_task(
        principal=SENDER, type="t", to_role="engineering", trace_id="t", deadline=timezone.now() + timedelta(hours=1)
    ).task
    services.claim_task(principal=WORKER, task_id=task.pk, trace_id="t")
    return task


def pass_deadlines(*tasks):
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(deadline=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize("run_batch", [on_postgresql, on_the_portable_path])
def test_the_last_reported_error_is_kept_beside_the_deadline_reason(db, run_batch):
    retried, never_failed = retried_task(), claimed_task()
    pass_deadlines(retried, never_failed)

    run_batch()

    retried.refresh_from_db()
    never_failed.refresh_from_db()
    assert (retried.status, retried.error) == ("cancelled", {"reason": "deadline", "last_error": REPORTED})
    assert (never_failed.status, never_failed.error) == ("cancelled", {"reason": "deadline", "last_error": None})


@pytest.mark.parametrize("run_batch", [on_postgresql, on_the_portable_path])
def test_the_event_names_the_reason_the_row_carries(db, run_batch):
    task = retried_task()
    pass_deadlines(task)

    run_batch()

    task.refresh_from_db()
    event = AuditEvent.objects.get(target_id=str(task.pk), event_type="task.deadline_passed")
    assert event.metadata["reason"] == task.error["reason"] == "deadline"
    assert event.metadata["before"] == {"status": "pending", "attempt": 1}
    assert event.metadata["after"] == {"status": task.status, "attempt": task.attempt}
