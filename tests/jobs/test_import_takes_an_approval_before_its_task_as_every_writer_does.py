"""import_json --overwrite locks a task's approvals before the task, the order every other writer
takes them in (approval first, then task). The expiry job locks an overdue approval and then its
task: an import that held the task and then reached for the approval it had just decided in the
file deadlocked with it, and PostgreSQL broke the ring by failing one of the two (the job's whole
batch, or the import's record). Found by an outside review.

The import is paused right after it holds the task, the expiry job runs meanwhile, then the import
goes on: the job passes over the approval the import holds, and the import writes the file's state."""

import io
import threading
import time

import orjson
import pytest
from django.db import connection

from approvals.models import Approval
from approvals.services import expire_approvals
from routing.models import Task
from tests.jobs.threads import run_in_thread
from transfer import services as transfer

pytestmark = pytest.mark.django_db(transaction=True)


def exported():
    stream = io.BytesIO()
    transfer.export_json(stream=stream)
    return orjson.loads(stream.getvalue())


def someone_waits_for_a_lock():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def test_an_overwrite_deciding_an_overdue_approval_runs_beside_the_expiry_job_without_a_deadlock(route, monkeypatch):
    assert connection.vendor == "postgresql", "this race needs real row locks"
    routed = route(requires_approval=True, approver_role="manager")
    data = exported()
    [task], [approval] = data["tasks"], data["approvals"]
    task.update(status="cancelled", finished_at=task["updated_at"])
    approval.update(status="rejected", decided_by="token:manager", decision_at=approval["created_at"])
    Approval.objects.filter(pk=routed["approval_id"]).update(expires_at=approval["created_at"])

    holds_the_task, go_on = threading.Event(), threading.Event()
    gate_left_behind = transfer._gate_left_behind

    def pausing(task_id):
        # Called once the task record is written, under its lock.
        holds_the_task.set()
        assert go_on.wait(timeout=30)
        return gate_left_behind(task_id)

    monkeypatch.setattr(transfer, "_gate_left_behind", pausing)
    reports, expired = [], []
    importer, import_errors = run_in_thread(
        lambda: reports.append(transfer.import_json(data={"tasks": [task], "approvals": [approval]}, overwrite=True))
    )
    assert holds_the_task.wait(timeout=30)
    job, job_errors = run_in_thread(lambda: expired.append(expire_approvals()))
    # Until the job has finished, or waits on a lock the import holds.
    deadline = time.monotonic() + 10
    while job.is_alive() and not someone_waits_for_a_lock() and time.monotonic() < deadline:
        time.sleep(0.05)
    go_on.set()
    importer.join(timeout=60)
    job.join(timeout=60)

    assert import_errors == [] and job_errors == []
    assert reports[0].errors == []
    assert (reports[0].counts["tasks"].updated, reports[0].counts["approvals"].updated) == (1, 1)
    assert expired == [0]
    assert Task.objects.get(pk=routed["task_id"]).status == "cancelled"
    assert Approval.objects.get(pk=routed["approval_id"]).status == "rejected"
