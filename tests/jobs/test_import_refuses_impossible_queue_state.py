"""import_json holds a task's work-queue fields to the rules the API and the queue keep: priority and
max_attempts in their ranges, attempts within the budget, a claimed task under a lease (else it
would stay claimed for ever: no lease ever passes, so neither claim-next nor reclaim_tasks frees it),
a dead letter only on a failed task and a finish time only on a finished one (else an open task
would list among the dead letters)."""

import pytest

from routing.models import Task
from tests.jobs.import_records import soon, task_record
from transfer import services as transfer

pytestmark = pytest.mark.django_db


def _task(**fields):
    return task_record(**{"type": "invoice.check", "status": "pending", **fields})


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"priority": 1000}, "priority"),
        ({"priority": -101}, "priority"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 500}, "max_attempts"),
        ({"attempt": 7, "max_attempts": 3}, "attempt"),
        ({"status": "claimed", "claimed_by": "token:x", "attempt": 1}, "lease"),
        ({"status": "claimed", "claimed_by": "token:x", "attempt": 0, "lease_token": "t",
          "lease_expires_at": soon()}, "attempt"),
        ({"status": "pending", "lease_token": "known-to-the-file", "lease_expires_at": soon()}, "lease"),
        ({"status": "pending", "dead_lettered_at": "2026-01-01T00:00:00Z",
          "error": {"reason": "attempts_exhausted"}}, "dead_lettered_at"),
        ({"status": "completed", "dead_lettered_at": "2026-01-01T00:00:00Z",
          "finished_at": "2026-01-01T00:00:00Z"}, "dead_lettered_at"),
        ({"status": "pending", "finished_at": "2026-01-01T00:00:00Z"}, "finished_at"),
    ],
)  # fmt: skip
def test_a_task_whose_queue_state_the_queue_could_never_reach_is_reported_and_skipped(fields, complaint):
    record = _task(**fields)

    report = transfer.import_json(data={"tasks": [record]})

    assert report.counts["tasks"].skipped == 1, report.errors
    assert complaint in report.errors[0][2]
    assert not Task.objects.filter(pk=record["id"]).exists()


def test_a_claimed_task_with_its_lease_imports():
    record = _task(status="claimed", claimed_by="token:x", attempt=1, lease_token="t", lease_expires_at=soon())

    report = transfer.import_json(data={"tasks": [record]})

    assert report.counts["tasks"].created == 1, report.errors
