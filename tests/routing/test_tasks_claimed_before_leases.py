"""A task claimed before the work queue existed (no lease) is not stuck in claimed after the upgrade:
its lease passes at once and reclaim_tasks gives it back to the queue, audited."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AuditEvent
from routing.models import Task, TaskStatus
from routing.reclaim import reclaim_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def test_a_task_claimed_before_leases_is_reclaimed_after_the_upgrade():
    _migrate(("routing", "0006_console_indexes"))
    # What 0005 leaves of a task claimed under the old code: claimed, no lease, no attempt counted.
    task = Task.objects.create(
        type="t", from_role="finance", to_role="engineering", trace_id="trace-old", created_by="token:f",
        status=TaskStatus.CLAIMED, claimed_by="token:old-worker",
    )  # fmt: skip
    assert task.lease_expires_at is None
    _migrate(("routing", "0007_lease_for_tasks_claimed_before_leases"))

    counts = reclaim_tasks()

    task.refresh_from_db()
    assert counts["task.lease_expired"] == 1
    assert task.status == TaskStatus.PENDING
    assert task.attempt == 1
    assert AuditEvent.objects.filter(event_type="task.lease_expired", target_id=str(task.pk)).exists()
